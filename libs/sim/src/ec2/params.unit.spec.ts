import { describe, expect, it } from "vitest";
import { Ec2Error } from "./errors.ts";
import { QueryParams } from "./params.ts";

const q = (s: string) => new QueryParams(s);

describe("QueryParams", () => {
  it("reads flattened lists in index order, gaps allowed, whatever the body order", () => {
    const p = q("Action=X&InstanceId.10=i-c&InstanceId.2=i-b&InstanceId.1=i-a&InstanceIdFoo.1=no");
    expect(p.indices("InstanceId")).toEqual([1, 2, 10]);
    expect(p.list("InstanceId")).toEqual(["i-a", "i-b", "i-c"]);
    expect(p.list("Missing")).toEqual([]);
  });

  it("reads tags (a missing value is empty) and filters with their values", () => {
    const p = q(
      "Tag.2.Key=b&Tag.1.Key=a&Tag.1.Value=1&Filter.1.Name=tag%3Acairn%3Acluster&Filter.1.Value.2=c2&Filter.1.Value.1=c1",
    );
    expect(p.tags("Tag")).toEqual([
      ["a", "1"],
      ["b", ""],
    ]);
    expect(p.filters()).toEqual([{ name: "tag:cairn:cluster", values: ["c1", "c2"] }]);
  });

  it("refuses a filter without a name and a tag without a key", () => {
    expect(() => q("Filter.1.Value.1=x").filters()).toThrow(/Filter\.1\.Name/);
    expect(() => q("Tag.1.Value=x").tags("Tag")).toThrow(/Tag\.1\.Key/);
  });

  it("parses integers and booleans strictly", () => {
    expect(q("MaxResults=10").int("MaxResults", 5, 1000)).toBe(10);
    expect(q("").int("MaxResults", 5, 1000)).toBeUndefined();
    for (const bad of ["MaxResults=3", "MaxResults=1001", "MaxResults=ten", "MaxResults=1.5"]) {
      const err = (() => {
        try {
          q(bad).int("MaxResults", 5, 1000);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(Ec2Error);
      expect((err as Ec2Error).code).toBe("InvalidParameterValue");
    }
    expect(q("DryRun=true").bool("DryRun", false)).toBe(true);
    expect(q("").bool("DryRun", false)).toBe(false);
    expect(() => q("DryRun=yes").bool("DryRun", false)).toThrow(Ec2Error);
  });

  it("fingerprints every parameter but the excluded ones, independent of order", () => {
    const a = q("Action=RunInstances&ImageId=ami-1&MaxCount=1&ClientToken=t1");
    const b = q("MaxCount=1&ClientToken=t2&ImageId=ami-1&Action=RunInstances");
    const c = q("Action=RunInstances&ImageId=ami-1&MaxCount=2&ClientToken=t1");
    expect(a.fingerprint(["ClientToken"])).toBe(b.fingerprint(["ClientToken"]));
    expect(a.fingerprint(["ClientToken"])).not.toBe(c.fingerprint(["ClientToken"]));
  });

  it("decodes form encoding (+ is a space, %XX escapes)", () => {
    const p = q("Tag.1.Key=Name&Tag.1.Value=my+node%20%26+co");
    expect(p.tags("Tag")).toEqual([["Name", "my node & co"]]);
    expect(p.hasPrefix("Tag.")).toBe(true);
    expect(p.hasPrefix("LaunchTemplate.")).toBe(false);
  });
});
