import { describe, expect, it } from "vitest";
import { z } from "zod";
import { baseConfig, ConfigError, envVars, loadConfig } from "./config.ts";

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("applies the defaults of the base schema", () => {
    const config = loadConfig(baseConfig, {});
    expect(config).toEqual({
      CAIRN_API_PORT: 8080,
      CAIRN_DATA_DIR: ".cairn",
      LOG_LEVEL: "info",
      CAIRN_SIM_PORT: 4566,
      CAIRN_SIM_TIME_SCALE: 1,
      CAIRN_NATS_REPLICAS: 1,
    });
  });

  it("takes the streams' replica count, 1 to 5, naming a bad one", () => {
    expect(loadConfig(baseConfig, { CAIRN_NATS_REPLICAS: "3" }).CAIRN_NATS_REPLICAS).toBe(3);
    expect(() => loadConfig(baseConfig, { CAIRN_NATS_REPLICAS: "three" })).toThrow(/CAIRN_NATS_REPLICAS/);
    expect(() => loadConfig(baseConfig, { CAIRN_NATS_REPLICAS: "7" })).toThrow(/CAIRN_NATS_REPLICAS/);
  });

  it("parses and coerces what is set, treating empty strings as unset", () => {
    const config = loadConfig(baseConfig, {
      NATS_URL: "nats://127.0.0.1:4222",
      CAIRN_API_PORT: "9000",
      CAIRN_SIM_TIME_SCALE: "60",
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://localhost:4318",
      LOG_LEVEL: "debug",
      JAEGER_UI_URL: "",
      UNRELATED: "ignored",
    });
    expect(config.NATS_URL).toBe("nats://127.0.0.1:4222");
    expect(config.CAIRN_API_PORT).toBe(9000);
    expect(config.CAIRN_SIM_TIME_SCALE).toBe(60);
    expect(config.OTEL_EXPORTER_OTLP_ENDPOINT).toBe("http://localhost:4318");
    expect(config.LOG_LEVEL).toBe("debug");
    expect(config.JAEGER_UI_URL).toBeUndefined();
    expect(config).not.toHaveProperty("UNRELATED");
  });

  it("names every bad variable and why, without echoing values", () => {
    const err = configError(() =>
      loadConfig(baseConfig, {
        CAIRN_API_PORT: "70000",
        CAIRN_SIM_PORT: "http",
        LOG_LEVEL: "loud",
        CAIRN_SIM_TIME_SCALE: "-2",
        OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318",
      }),
    );
    expect(err.name).toBe("ConfigError");
    expect(err.message).toContain("CAIRN_API_PORT: must be a number between 1 and 65535");
    expect(err.message).toContain("CAIRN_SIM_PORT: must be a number between 1 and 65535");
    expect(err.message).toContain("LOG_LEVEL: must be one of trace, debug, info, warn, error, fatal");
    expect(err.message).toContain("CAIRN_SIM_TIME_SCALE: must be a positive number");
    expect(err.message).toMatch(/OTEL_EXPORTER_OTLP_ENDPOINT: must be an http\(s\) URL/);
    expect(err.issues.map((i) => i.variable).sort()).toEqual([
      "CAIRN_API_PORT",
      "CAIRN_SIM_PORT",
      "CAIRN_SIM_TIME_SCALE",
      "LOG_LEVEL",
      "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]);
    expect(err.message).not.toContain("70000");
    expect(err.message).not.toContain("loud");
    expect(err.cause).toBeInstanceOf(z.ZodError);
  });

  it("lets services extend the base schema, and reports missing required variables", () => {
    const schema = baseConfig.extend({
      CAIRN_SWEEP_EVERY_MS: envVars.positiveNumber().default(5_000),
      CAIRN_REGION: envVars.string(),
    });
    const err = configError(() => loadConfig(schema, { CAIRN_REGION: "" }));
    expect(err.issues).toEqual([{ variable: "CAIRN_REGION", reason: "is required" }]);

    const config = loadConfig(schema, { CAIRN_REGION: "eu-west-1" });
    expect(config.CAIRN_SWEEP_EVERY_MS).toBe(5_000);
    expect(config.CAIRN_REGION).toBe("eu-west-1");
    expect(config.CAIRN_API_PORT).toBe(8080);
  });

  it("reads process.env by default", () => {
    const before = process.env.CAIRN_DATA_DIR;
    process.env.CAIRN_DATA_DIR = "/var/lib/cairn";
    try {
      expect(loadConfig(baseConfig).CAIRN_DATA_DIR).toBe("/var/lib/cairn");
    } finally {
      if (before === undefined) delete process.env.CAIRN_DATA_DIR;
      else process.env.CAIRN_DATA_DIR = before;
    }
  });
});
