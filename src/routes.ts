import type { CaiboRoute } from './core/events';

/** What a route does with a request. */
export interface RouteSpec {
  /** The path relative to the mount point. */
  path: string;
  /** The provider for callback routes; `null` for the test routes. */
  provider: CaiboRoute | null;
  /** Served methods, for matching and the `Allow` header. */
  methods: readonly ('GET' | 'POST')[];
  /** Body formats accepted on POST. */
  accepts: readonly ('form' | 'json')[];
  /** Test routes answer with a report in this format instead of calling the handler. */
  report?: 'json' | 'text';
}

/** The routes, relative to where the router is mounted (`app.use('/callbacks', …)` gives the documented URLs). */
export const CALLBACK_ROUTES: readonly RouteSpec[] = [
  { path: '/caibo', provider: 'caibo', methods: ['POST'], accepts: ['form', 'json'] },
  { path: '/caibo-gateway', provider: 'caibo-gateway', methods: ['GET', 'POST'], accepts: ['form', 'json'] },
  { path: '/caibowh', provider: 'caibowh', methods: ['POST'], accepts: ['form', 'json'] },
  { path: '/3ds', provider: '3ds', methods: ['GET', 'POST'], accepts: ['form', 'json'] },
];

/** Diagnostic routes: parse and check like the real ones, never touch the store or the handler. */
export const TEST_ROUTES: readonly RouteSpec[] = [
  { path: '/test/json', provider: null, methods: ['POST'], accepts: ['json'], report: 'json' },
  { path: '/test/form', provider: null, methods: ['POST'], accepts: ['form'], report: 'json' },
  { path: '/test/text', provider: null, methods: ['GET'], accepts: [], report: 'text' },
];

/** Builds the path → route table once; a trailing slash matches too, as in Express's default routing. */
export function routeTable(testEndpoints: boolean): Map<string, RouteSpec> {
  const table = new Map<string, RouteSpec>();
  for (const route of testEndpoints ? [...CALLBACK_ROUTES, ...TEST_ROUTES] : CALLBACK_ROUTES) {
    table.set(route.path, route);
    table.set(`${route.path}/`, route);
  }
  return table;
}
