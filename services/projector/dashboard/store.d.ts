/** Types of store.js's pure parts, for the unit tests that run them in Node. */
type Row = Record<string, unknown> & { version?: number; updatedAt?: string };
export function isNotOlder(incoming: Row, current: Row | undefined): boolean;
export function merge(resource: string, incoming: Row, current: Row | undefined): Row;
