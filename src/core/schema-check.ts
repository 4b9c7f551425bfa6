import Ajv, { _, type KeywordCxt } from 'ajv';
import { z } from 'zod';

/** A yes/no answer to "would the zod schema accept this value, unchanged?". */
export type SchemaCheck = (value: unknown) => boolean;

/**
 * Compiles a zod schema a second time, with ajv, from the schema's own JSON Schema
 * (`z.toJSONSchema`). zod stays the one definition and the source of every error message; the
 * compiled check only says yes or no, and allocates nothing on the way. zod's `safeParse` builds
 * a result object per field and a new output object: 12–14% of the router's own CPU per
 * callback. On a notification, in isolation, the check took 0.35–0.6 µs where `safeParse` took
 * 1.4–2.4 µs (bench/README.md, "The notification schema, compiled by ajv").
 *
 * Only for schemas whose parse returns what it was given: plain types, patterns and lengths. A
 * `.refine()` or `.transform()` has no JSON Schema, so this check would skip it; the agreement
 * property test (test/core/schema-check.test.ts) is there to catch one being added.
 */
export function compileSchemaCheck(schema: z.ZodType): SchemaCheck {
  // Lengths: zod's `.max()` and ajv's `maxLength` both count code points (an emoji is one), as
  // the property test checks at the bound. Patterns: zod runs its regexes without the `u` flag,
  // so ajv is told to do the same: the same RegExp, the same answers.
  // No meta-schema: zod wrote the schema, and compiling draft-07's own meta-schema first took
  // four times as long as compiling the schema. Strict mode still refuses a keyword ajv does not know.
  const ajv = new Ajv({ strict: true, unicodeRegExp: false, meta: false, validateSchema: false });
  // ajv's own maxLength counts the code points of every string it checks: a function call and a
  // walk per field, about 5% of the router's CPU per callback. A string no longer in UTF-16 units
  // than the bound has no more code points either, so only a longer one needs counting.
  ajv.removeKeyword('maxLength');
  ajv.addKeyword({
    keyword: 'maxLength',
    type: 'string',
    schemaType: 'number',
    code(cxt: KeywordCxt) {
      const count = cxt.gen.scopeValue('func', { ref: codePoints });
      cxt.fail(_`${cxt.data}.length > ${cxt.schema} && ${count}(${cxt.data}) > ${cxt.schema}`);
    },
  });
  // `io: 'input'`: what the schema accepts, with no `additionalProperties: false` (zod strips
  // unknown fields rather than refusing them).
  const jsonSchema = z.toJSONSchema(schema, { target: 'draft-7', io: 'input' });
  delete jsonSchema.$schema;
  return ajv.compile(jsonSchema);
}

/** The code points of `s`: a surrogate pair is one, a lone surrogate one too (as ajv and zod count). */
function codePoints(s: string): number {
  return [...s].length;
}
