/**
 * Request validators compiled on first use, the counterpart of `LazySerializers`
 * (serializers.ts). Fastify compiles an Ajv validator for the body, querystring, params and
 * headers schema of every route when the server gets ready: 123 for the node's API, each a
 * generated function (`new Function`) whose source and Ajv's bookkeeping stay on the heap of
 * every node for its whole life, and the Ajv instance with its format plugin besides, while an
 * idle node is asked a handful of routes.
 *
 * `LazyValidators.buildValidator` is the validator factory for Fastify's `schemaController`: a
 * route's validator is a small function that has Fastify's own compiler (`@fastify/ajv-compiler`,
 * with the same external schemas and Ajv options, so requests are accepted, coerced and refused
 * exactly as before) compile the real one the first time a request needs it. Ajv is created at
 * that first compile. A schema Ajv cannot compile fails its route's requests (500) instead of the
 * server's start; `compileAll` compiles every one still waiting (the API's tests run it over
 * every route).
 *
 * One difference: Fastify lower-cases the header names in a `headers` schema for its own compiler
 * (Node gives every received header name in lower case), but leaves a schema given to a custom
 * compiler such as this one as written. So a header schema here must name its headers in lower
 * case, and one that does not is refused when the route is registered (`HeaderCaseError`), where
 * it would otherwise never match the header it names.
 */
import AjvCompiler from '@fastify/ajv-compiler'
import { InvalidInputError } from '../core/errors.ts'
import { DeferredCompiles } from './deferred-compiles.ts'

/** Ajv's validate function as Fastify calls it. */
interface Validate {
  (data: unknown, context?: { parentData: unknown; parentDataProperty: string }): unknown
  errors?: unknown
  schemaEnv?: unknown
}

interface RouteDefinition {
  schema?: unknown
  method: string
  url: string
  httpPart: string
  contentType?: string
}

type ValidatorCompiler = (route: RouteDefinition) => Validate
type ValidatorFactory = (externalSchemas: unknown, options?: unknown) => ValidatorCompiler

export class LazyValidators {
  readonly #build = AjvCompiler() as unknown as ValidatorFactory
  /** Validators handed out and not yet compiled. */
  readonly #compiles = new DeferredCompiles()

  /** Fastify's `compilersFactory.buildValidator`. */
  readonly buildValidator = this.#factory() as unknown as AjvCompiler.BuildCompilerFromPool

  /**
   * The factory, typed as Fastify calls it: @fastify/ajv-compiler's types give the compiler a
   * schema for its argument, where Fastify passes the route definition with the schema in it.
   */
  #factory(): ValidatorFactory {
    return (externalSchemas, options) => {
      let compileNow: ValidatorCompiler | undefined
      return (route) => {
        if (route.httpPart === 'headers') checkHeaderCase(route.schema, `${route.method} ${route.url}`)
        const compiled = this.#compiles.defer(() => {
          compileNow ??= this.#build(externalSchemas, options)
          return compileNow(route)
        })
        const validate: Validate = (data, context) => {
          const real = compiled()
          const valid = real(data, context)
          // Fastify reads the errors from the function it called, right after the call.
          validate.errors = real.errors
          return valid
        }
        // Fastify passes the request as Ajv's parent data (so Ajv may coerce or default the whole
        // part) to functions that carry `schemaEnv`, which every Ajv validator does.
        validate.schemaEnv = true
        return validate
      }
    }
  }

  /** How many validators wait for their first use. */
  get uncompiled(): number {
    return this.#compiles.waiting
  }

  /** Compiles every validator still waiting: a schema that cannot be compiled throws here. */
  compileAll(): void {
    this.#compiles.compileAll()
  }
}

/** A header schema that names a header with upper-case letters (see the module comment). */
export class HeaderCaseError extends InvalidInputError {
  override name = 'HeaderCaseError'
}

/** Throws `HeaderCaseError` for a header name with upper-case letters in `properties` or `required`, at any depth. */
function checkHeaderCase(schema: unknown, route: string): void {
  if (Array.isArray(schema)) {
    for (const item of schema) checkHeaderCase(item, route)
    return
  }
  if (typeof schema !== 'object' || schema === null) return
  const { properties, required } = schema as { properties?: unknown; required?: unknown }
  const names = [
    ...(typeof properties === 'object' && properties !== null ? Object.keys(properties) : []),
    ...(Array.isArray(required) ? required.filter((name) => typeof name === 'string') : []),
  ]
  const upper = names.find((name) => name !== name.toLowerCase())
  if (upper !== undefined)
    throw new HeaderCaseError(`${route}: the headers schema must name header "${upper}" in lower case`)
  for (const value of Object.values(schema)) checkHeaderCase(value, route)
}
