/**
 * Response serializers compiled on first use, one per schema. Fastify compiles a
 * fast-json-stringify function for every status code of every route's response schema when the
 * route is registered: about 450 for the node's API, mostly the same error body under `4xx` and
 * `5xx` of each route, each a generated function whose source (3.4 MB in all) and state stayed
 * on the heap of every node for its whole life, while an idle node answers a handful of routes.
 *
 * `LazySerializers.buildSerializer` is the serializer factory for Fastify's `schemaController`:
 * a route's serializer is a small function that compiles the real one the first time the route
 * answers with that status, and a schema object shared by many routes (the error body) is
 * compiled once for all of them. The compiled function is Fastify's own
 * (`@fastify/fast-json-stringify-compiler`), with the same external schemas and options, so
 * answers are byte for byte what they were. A schema fast-json-stringify cannot compile fails
 * its first answer instead of the server's start; `compileAll` compiles every one still waiting
 * (the API's tests run it over every route).
 */
import SerializerSelector from '@fastify/fast-json-stringify-compiler'
import { DeferredCompiles } from './deferred-compiles.ts'

type Serializer = SerializerSelector.Serializer
type RouteDefinition = SerializerSelector.RouteDefinition

export class LazySerializers {
  readonly #build = SerializerSelector()
  /** Serializers handed out and not yet compiled. */
  readonly #compiles = new DeferredCompiles()
  /** By schema object, for factories without external schemas (which every route then shares). */
  readonly #shared = new WeakMap<object, Serializer>()

  /** Fastify's `compilersFactory.buildSerializer`. */
  readonly buildSerializer: SerializerSelector.SerializerFactory = (externalSchemas, options) => {
    const external = typeof externalSchemas === 'object' && externalSchemas !== null ? externalSchemas : {}
    const bySchema = Object.keys(external).length === 0 ? this.#shared : new WeakMap<object, Serializer>()
    let compileNow: SerializerSelector.SerializerCompiler | undefined
    return (route: RouteDefinition): Serializer => {
      const key = typeof route.schema === 'object' && route.schema !== null ? route.schema : undefined
      const known = key === undefined ? undefined : bySchema.get(key)
      if (known !== undefined) return known
      const compiled = this.#compiles.defer(() => {
        compileNow ??= this.#build(externalSchemas, options)
        return compileNow(route)
      })
      const serializer: Serializer = (data) => compiled()(data)
      if (key !== undefined) bySchema.set(key, serializer)
      return serializer
    }
  }

  /** How many serializers wait for their first use. */
  get uncompiled(): number {
    return this.#compiles.waiting
  }

  /** Compiles every serializer still waiting: a schema that cannot be compiled throws here. */
  compileAll(): void {
    this.#compiles.compileAll()
  }
}
