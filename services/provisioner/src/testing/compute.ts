import type { Compute } from "../ports.ts";

/**
 * The compute port over `base` with some calls replaced: what a spec wraps to count,
 * slow down or "crash" around the real adapter. The adapter's calls live on its class's
 * prototype, which a spread (`{ ...ec2 }`) would drop, so each is bound here.
 */
export function computeOver(base: Compute, replaced: Partial<Compute> = {}): Compute {
  const bound: Record<string, unknown> = {};
  for (
    let proto = Object.getPrototypeOf(base);
    proto && proto !== Object.prototype;
    proto = Object.getPrototypeOf(proto)
  )
    for (const name of Object.getOwnPropertyNames(proto)) {
      const f = (base as unknown as Record<string, unknown>)[name];
      if (name !== "constructor" && typeof f === "function" && !(name in bound)) bound[name] = f.bind(base);
    }
  return { ...base, ...bound, ...replaced } as Compute;
}
