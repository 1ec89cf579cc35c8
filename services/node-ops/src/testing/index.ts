/** What suites and benches of node-ops and its neighbours share. */
export { fixturePodOwner } from "./pod-owner.ts";
