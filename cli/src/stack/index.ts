/** The production shape on one machine: `npm run stack`, and its environment for tests (shape.ts). */
export * from "./shape.ts";
export { type StackOptions, stack } from "./stack.ts";
