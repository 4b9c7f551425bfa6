export { signPayload } from './sign';
export { sampleNotification, formBody, PUBLISHED_EXAMPLE_BODY } from './samples';
export type { NotificationFields } from './samples';
export { runStoreConformance, type StoreConformanceOptions, type ConformanceTiming, type ConformanceExpect, type ConformanceDescribe, type ConformanceIt } from './store-conformance';
