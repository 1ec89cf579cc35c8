import { SSMClient } from "@aws-sdk/client-ssm";
import { describe, expect, it } from "vitest";
import { ssmClient } from "./ssm.ts";

describe("ssmClient", () => {
  it("carries Cairn's client span and not the SDK's call logging, which an SDK client has by default", () => {
    const names = (c: SSMClient) => c.middlewareStack.identify().map((m) => m.split(" ")[0]);
    // The SDK's default: its logging middleware, which masks and copies every answer even
    // for its no-op logger (the test fails if the SDK renames it: then nothing is removed).
    expect(names(new SSMClient({ region: "eu-west-1" }))).toContain("loggerMiddleware");
    const client = ssmClient("eu-west-1", { endpoint: "http://127.0.0.1:1" });
    expect(names(client)).not.toContain("loggerMiddleware");
    expect(names(client)).toContain("cairnClientSpan");
    client.destroy();
  });
});
