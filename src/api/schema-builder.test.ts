// The schema builder against TypeBox itself: every form the API's schemas use gives the object
// TypeBox gives (keys in the same order, the same hidden markers), and a node's API modules
// load without TypeBox.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import TypeBox from 'typebox'
import Type from './schema-builder.ts'

/** Every own property, hidden ones included, in order, with whether it is enumerable; recursively. */
function shape(value: unknown): unknown {
  if (value instanceof RegExp || typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) return value.map(shape)
  return Object.getOwnPropertyNames(value).map((key) => {
    const descriptor = Object.getOwnPropertyDescriptor(value, key) as PropertyDescriptor
    return [key, descriptor.enumerable, shape(descriptor.value)]
  })
}

/** Builds the same schemas with either set of builders. */
function forms(T: typeof Type): Record<string, unknown> {
  const hex = T.String({ pattern: '^[0-9a-f]*$', maxLength: 64 })
  return {
    string: T.String(),
    stringOptions: T.String({ minLength: 1, description: 'a name' }),
    integer: T.Integer({ minimum: 0 }),
    number: T.Number(),
    boolean: T.Boolean({ default: false }),
    null: T.Null(),
    unknown: T.Unknown({ description: 'anything' }),
    literals: [T.Literal('cpu'), T.Literal(3), T.Literal(true), T.Literal(2n, { description: 'big' })],
    array: T.Array(T.Integer(), { maxItems: 8 }),
    object: T.Object({ a: hex, b: T.Optional(T.Integer()), c: T.Optional(T.Array(T.String())) }),
    objectOptions: T.Object({ a: T.String() }, { additionalProperties: false, description: 'x' }),
    allOptional: T.Object({ a: T.Optional(T.String()) }),
    empty: T.Object({}),
    optionalOfOptional: T.Optional(T.Optional(T.Number({ maximum: 1 }))),
    union: T.Union([T.Literal('a'), T.Null()], { description: 'a or null' }),
    intersect: T.Intersect([T.Object({ x: T.String() }), T.Object({ y: T.Optional(T.String()) })]),
    record: T.Record(T.String(), T.Boolean()),
    recordOptions: T.Record(T.String(), T.Union([T.String(), T.Number()]), { maxProperties: 64 }),
    recordPattern: T.Record(T.String({ pattern: '^[A-Za-z][A-Za-z0-9]*$' }), T.String(), { minProperties: 1 }),
    optionalRecord: T.Optional(T.Record(T.String(), T.Integer({ minimum: 0 }))),
  }
}

test('every form the API uses gives the object TypeBox gives, hidden markers and key order included', () => {
  const ours = forms(Type)
  const theirs = forms(TypeBox as unknown as typeof Type)
  for (const name of Object.keys(theirs)) assert.deepEqual(shape(ours[name]), shape(theirs[name]), name)
  const json = (value: unknown): string =>
    JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))
  assert.equal(json(ours), json(theirs))
})

test('a record with keys other than strings, and a literal of another type, are refused', () => {
  assert.throws(() => Type.Record(Type.Integer() as never, Type.String()), /string keys only/)
  assert.throws(() => Type.Literal({} as never), /a literal must be/)
})

test("the API's route modules load without TypeBox", () => {
  const script = [
    `import { registerHooks } from 'node:module'`,
    `registerHooks({ resolve(spec, ctx, next) { if (spec === 'typebox' || spec.startsWith('typebox/')) throw new Error('TypeBox loaded by ' + ctx.parentURL); return next(spec, ctx) } })`,
    `await import(${JSON.stringify(new URL('./server.ts', import.meta.url).href)})`,
    `process.stdout.write('loaded')`,
  ].join('\n')
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  assert.equal(run.status, 0, run.stderr)
  assert.match(run.stdout, /loaded/)
})
