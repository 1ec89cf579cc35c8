/** Types of format.js, for the unit tests that run it in Node. */
export function duration(ms: number | null | undefined): string;
export function ago(iso: string | null | undefined, now: number): string;
export function when(iso: string | null | undefined): string;
export function plural(n: number, word: string, many?: string): string;
export function shortId(id: string | null | undefined): string;
