import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../errors.ts";
import { createData } from "./create-data.ts";

const flags = { cluster: "demo-1", image: "ghcr.io/acme/ide:1" };

async function refusal(p: Promise<unknown>): Promise<InvalidInputError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InvalidInputError);
  return err as InvalidInputError;
}

describe("session create's data, checked before sending", () => {
  it("fills in the template's defaults, the user from $USER, and durations in seconds", async () => {
    expect(
      await createData("s-1", { ...flags, idleTimeout: "30m", maxLifetime: "8h" }, false, { USER: "alice" }),
    ).toEqual({
      sessionId: "s-1",
      user: "alice",
      clusterId: "demo-1",
      template: { image: "ghcr.io/acme/ide:1", cpu: "1", memory: "2Gi", storage: "10Gi" },
      idleTimeoutSeconds: 1800,
      maxLifetimeSeconds: 28_800,
    });
  });

  it("leaves the user to the API when a token says who the caller is", async () => {
    const data = await createData("s-1", flags, true, { USER: "alice" });
    expect(data.user).toBeUndefined();
  });

  it("generates an id from the user when none is given", async () => {
    expect((await createData(undefined, flags, false, { USER: "bob" })).sessionId).toMatch(
      /^bob-[a-z0-9]{5}$/,
    );
  });

  it("refuses a bad quantity, naming the flag as typed", async () => {
    const err = await refusal(
      createData("s-1", { ...flags, cpu: "lots", memory: "1 GB" }, false, { USER: "a" }),
    );
    expect(err.issues).toEqual([
      "--cpu: must be a Kubernetes quantity such as 2, 500m or 4Gi",
      "--memory: must be a Kubernetes quantity such as 2, 500m or 4Gi",
    ]);
  });

  it("says what is missing", async () => {
    const err = await refusal(createData("s-1", {}, false, {}));
    expect(err.issues).toEqual([
      "give --cluster <id> (the cluster it runs on)",
      "give --image <image> (the session's container image)",
      "give --user <name> (whose session it is: no token says so)",
    ]);
  });

  it("refuses an id or user that cannot be a subject token", async () => {
    const err = await refusal(createData("a b", { ...flags, user: "bob.smith" }, false, {}));
    expect(err.issues.map((i) => i.split(":")[0])).toEqual(["session id", "--user"]);
  });
});
