/**
 * The part of TypeBox's `Type` builders the API's schemas use (String, Integer, Number, Boolean,
 * Null, Unknown, Literal, Array, Object, Optional, Union, Intersect and Record with string keys),
 * built here so that a node does not load TypeBox: its ESM build is 746 modules, about 3 MB of a
 * node's heap for a dozen functions. The types are TypeBox's own (a type-only import), so
 * `Type.Static<typeof schema>` is unchanged, and each builder returns the object TypeBox returns:
 * the same JSON Schema, in the same key order, with the same hidden `~kind` and `~optional`
 * markers (src/api/schema-builder.test.ts compares them with TypeBox's for every form used).
 */
import type TypeBox from 'typebox'

type Builders = Pick<
  typeof TypeBox,
  | 'String'
  | 'Integer'
  | 'Number'
  | 'Boolean'
  | 'Null'
  | 'Unknown'
  | 'Literal'
  | 'Array'
  | 'Object'
  | 'Optional'
  | 'Union'
  | 'Intersect'
  | 'Record'
>

type Schema = Record<string, unknown>

/** TypeBox's key of a record whose keys are any string. */
const STRING_KEY = '^.*$'

function hide(target: Schema, key: string, value: unknown): void {
  Object.defineProperty(target, key, { configurable: true, writable: true, enumerable: false, value })
}

/** A schema of `kind`: its JSON Schema keywords, then the caller's options, then the hidden kind. */
function create(kind: string, keywords: Schema, options: object | undefined): Schema {
  const schema: Schema = { ...keywords, ...options }
  hide(schema, '~kind', kind)
  return schema
}

/** A copy of `current` (hidden markers kept) with `hidden` added as hidden and `options` as keywords. */
function update(current: Schema, hidden: Schema, options: object): Schema {
  const result: Schema = {}
  const replaced = new Set([...Object.keys(hidden), ...Object.keys(options)])
  for (const key of Object.getOwnPropertyNames(current)) {
    if (replaced.has(key)) continue
    Object.defineProperty(result, key, Object.getOwnPropertyDescriptor(current, key) as PropertyDescriptor)
  }
  for (const [key, value] of Object.entries(hidden)) hide(result, key, value)
  for (const [key, value] of Object.entries(options))
    Object.defineProperty(result, key, { configurable: true, enumerable: true, writable: true, value })
  return result
}

function literalType(value: unknown): string {
  switch (typeof value) {
    case 'bigint':
    case 'boolean':
    case 'number':
    case 'string':
      return typeof value
    default:
      throw new TypeError(`a literal must be a string, number, boolean or bigint, not ${typeof value}`)
  }
}

const builders = {
  String: (options?: object) => create('String', { type: 'string' }, options),
  Integer: (options?: object) => create('Integer', { type: 'integer' }, options),
  Number: (options?: object) => create('Number', { type: 'number' }, options),
  Boolean: (options?: object) => create('Boolean', { type: 'boolean' }, options),
  Null: (options?: object) => create('Null', { type: 'null' }, options),
  Unknown: (options?: object) => create('Unknown', {}, options),
  Literal: (value: unknown, options?: object) => create('Literal', { type: literalType(value), const: value }, options),
  Array: (items: Schema, options?: object) => create('Array', { type: 'array', items }, options),
  Object: (properties: Record<string, Schema>, options?: object) => {
    const required = Object.keys(properties).filter((key) => !Object.hasOwn(properties[key] as Schema, '~optional'))
    return create('Object', { type: 'object', ...(required.length > 0 ? { required } : {}), properties }, options)
  },
  Optional: (schema: Schema) => update(schema, { '~optional': true }, {}),
  Union: (anyOf: Schema[], options?: object) => create('Union', { anyOf }, options),
  Intersect: (allOf: Schema[], options?: object) => create('Intersect', { allOf }, options),
  Record: (key: Schema, value: Schema, options: object = {}) => {
    if (key['~kind'] !== 'String')
      throw new TypeError('this schema builder makes records with string keys only (TypeBox makes the others)')
    const pattern =
      typeof key.pattern === 'string' || key.pattern instanceof RegExp ? key.pattern.toString() : STRING_KEY
    return update(create('Record', { type: 'object', patternProperties: { [pattern]: value } }, undefined), {}, options)
  },
}

/** TypeBox's builders for the forms above; import this where TypeBox's `Type` would be. */
const Type = builders as unknown as Builders
// TypeBox's types that the API's modules name as `Type....`
// eslint-disable-next-line @typescript-eslint/no-namespace
declare namespace Type {
  export type Static<T extends TypeBox.TSchema> = TypeBox.Static<T>
  export type TSchema = TypeBox.TSchema
}
export default Type
