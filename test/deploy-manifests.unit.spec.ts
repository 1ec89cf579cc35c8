/**
 * deploy/ cannot be run here (no Docker, no cluster), so it is checked by parsing:
 *  - every Kubernetes object against the Kubernetes API schemas (kubernetes-models: the
 *    OpenAPI schemas of the API, bundled, validated offline with ajv), plus zod `.strict()`
 *    objects for the parts Cairn relies on, which also catch unknown (misspelt) fields that
 *    the API schemas let through;
 *  - the production shape's promises: two replicas and a PodDisruptionBudget per service,
 *    readiness on /readyz and liveness on /healthz, resources, the NATS password from a Secret;
 *  - the three ways Cairn runs in that shape — `npm run stack` (cli/src/stack/shape.ts),
 *    deploy/compose.yaml and deploy/kubernetes — give each service the same variables, and
 *    each service logs in as the NATS user of its own name, one that deploy/nats/nats.conf has.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  NATS_USERS,
  natsPasswordVariable,
  SERVICE_MALLOC_ENV,
  SERVICE_NODE_OPTIONS,
  STACK_SERVICES,
  type StackService,
  serviceEnv,
} from "@cairn/cli/stack";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { Job } from "kubernetes-models/batch/v1/Job";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service as K8sService } from "kubernetes-models/v1/Service";
import { describe, expect, it } from "vitest";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { z } from "zod";

const deploy = resolve(import.meta.dirname, "../deploy");
const k8sDir = join(deploy, "kubernetes");

type Obj = Record<string, unknown> & { apiVersion?: string; kind?: string; metadata?: { name?: string } };

/** Every object of a manifest file (multi-document YAML). */
function objectsOf(file: string): Obj[] {
  return parseAllDocuments(readFileSync(join(k8sDir, file), "utf8")).map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join("; ")}`);
    return d.toJS() as Obj;
  });
}

const manifestFiles = readdirSync(k8sDir).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
const all = manifestFiles.flatMap((file) => objectsOf(file).map((o) => ({ file, o })));
const byKind = (kind: string) => all.filter(({ o }) => o.kind === kind).map(({ o }) => o);

/** The API schema of each kind Cairn ships (apiVersion/kind → model). */
const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": K8sService,
  "apps/v1/Deployment": Deployment,
  "batch/v1/Job": Job,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
};

// --- zod, strict: what Cairn's Deployments may hold ----------------------------------------
const keyRef = z.object({ name: z.string(), key: z.string() }).strict();
const envVar = z.union([
  z.object({ name: z.string(), value: z.string() }).strict(),
  z
    .object({
      name: z.string(),
      valueFrom: z.union([
        z.object({ secretKeyRef: keyRef }).strict(),
        z.object({ configMapKeyRef: keyRef }).strict(),
      ]),
    })
    .strict(),
]);
const probe = (path: "/healthz" | "/readyz") =>
  z
    .object({
      httpGet: z.object({ path: z.literal(path), port: z.literal("health") }).strict(),
      periodSeconds: z.number().int().positive(),
      timeoutSeconds: z.number().int().positive().optional(),
      failureThreshold: z.number().int().positive(),
    })
    .strict();
const container = z
  .object({
    name: z.string(),
    image: z.literal("cairn"),
    command: z.tuple([z.literal("node"), z.string().regex(/^services\/[a-z-]+\/dist\/bundle\/main\.mjs$/)]),
    env: z.array(envVar),
    ports: z.array(z.object({ name: z.string(), containerPort: z.number().int() }).strict()),
    startupProbe: probe("/healthz"),
    livenessProbe: probe("/healthz"),
    readinessProbe: probe("/readyz"),
    resources: z
      .object({
        requests: z.object({ cpu: z.string(), memory: z.string() }).strict(),
        limits: z.object({ memory: z.string() }).strict(),
      })
      .strict(),
    securityContext: z
      .object({
        allowPrivilegeEscalation: z.literal(false),
        readOnlyRootFilesystem: z.literal(true),
        capabilities: z.object({ drop: z.tuple([z.literal("ALL")]) }).strict(),
      })
      .strict(),
    volumeMounts: z.array(z.object({ name: z.string(), mountPath: z.string() }).strict()),
  })
  .strict();
const labels = z.object({
  "app.kubernetes.io/name": z.string(),
  "app.kubernetes.io/part-of": z.literal("cairn"),
});
const deployment = z
  .object({
    apiVersion: z.literal("apps/v1"),
    kind: z.literal("Deployment"),
    metadata: z.object({ name: z.string(), namespace: z.literal("cairn"), labels }).strict(),
    spec: z
      .object({
        replicas: z.number().int().min(2),
        revisionHistoryLimit: z.number().int(),
        selector: z
          .object({ matchLabels: z.object({ "app.kubernetes.io/name": z.string() }).strict() })
          .strict(),
        strategy: z
          .object({
            type: z.literal("RollingUpdate"),
            rollingUpdate: z.object({ maxSurge: z.number(), maxUnavailable: z.literal(0) }).strict(),
          })
          .strict(),
        template: z
          .object({
            metadata: z.object({ labels }).strict(),
            spec: z
              .object({
                automountServiceAccountToken: z.literal(false),
                enableServiceLinks: z.literal(false),
                terminationGracePeriodSeconds: z.number().int(),
                topologySpreadConstraints: z.array(z.record(z.string(), z.unknown())).min(1),
                securityContext: z.object({ runAsNonRoot: z.literal(true) }).passthrough(),
                containers: z.array(container).length(1),
                volumes: z.array(z.record(z.string(), z.unknown())),
              })
              .strict(),
          })
          .strict(),
      })
      .strict(),
  })
  .strict();
type CairnDeployment = z.infer<typeof deployment>;

/** The Deployments, each parsed strictly: a failure names the Deployment and the field, in the test that reads them. */
function cairnDeployments(): Map<string, CairnDeployment> {
  return new Map(
    byKind("Deployment").map((o) => {
      const parsed = deployment.safeParse(o);
      if (!parsed.success)
        throw new Error(`Deployment ${o.metadata?.name}: ${z.prettifyError(parsed.error)}`);
      return [parsed.data.metadata.name, parsed.data];
    }),
  );
}

/** Every variable a service may be given: all optional ones present. */
function stackEnvNames(service: StackService): string[] {
  return Object.keys(
    serviceEnv(service, {
      natsUrl: "nats://a:4222",
      natsPassword: "p",
      natsReplicas: 3,
      healthPort: 9464,
      healthHost: "0.0.0.0",
      logLevel: "info",
      dataDir: "/tmp/cairn",
      databaseUrl: "postgres://x",
      apiPort: 8080,
      apiHost: "127.0.0.1",
      otlpEndpoint: "http://jaeger:4318",
      jaegerUiUrl: "http://localhost:16686",
    }),
  ).sort();
}

describe("deploy/kubernetes against the Kubernetes API schemas", () => {
  it("every object is of a kind Cairn means to ship and valid against its API schema", () => {
    expect(all.length).toBeGreaterThanOrEqual(15);
    for (const { file, o } of all) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      expect(Model, `${file}: ${o.apiVersion}/${o.kind}`).toBeDefined();
      expect(() => new Model!(o as never).validate(), `${file}: ${o.kind} ${o.metadata?.name}`).not.toThrow();
    }
  });

  it("the schemas do catch a broken manifest (a string where a count goes, a container without a name)", () => {
    const d = byKind("Deployment")[0]!;
    const spec = d.spec as Record<string, unknown>;
    expect(() => new Deployment({ ...d, spec: { ...spec, replicas: "2" } } as never).validate()).toThrow(
      /replicas/,
    );
    const template = spec.template as { spec: { containers: Record<string, unknown>[] } };
    const nameless = { ...template, spec: { ...template.spec, containers: [{ image: "cairn" }] } };
    expect(() => new Deployment({ ...d, spec: { ...spec, template: nameless } } as never).validate()).toThrow(
      /name/,
    );
    // …and the strict zod shape catches the misspelt field the API schema lets through.
    const misspelt = {
      ...template,
      spec: { ...template.spec, containers: [{ ...template.spec.containers[0], envv: [] }] },
    };
    expect(deployment.safeParse({ ...d, spec: { ...spec, template: misspelt } }).success).toBe(false);
  });

  it("kustomization.yaml applies every manifest but the Secret template", () => {
    const k = z
      .object({
        apiVersion: z.literal("kustomize.config.k8s.io/v1beta1"),
        kind: z.literal("Kustomization"),
        resources: z.array(z.string()),
        images: z.array(z.object({ name: z.string(), newName: z.string(), newTag: z.string() }).strict()),
      })
      .strict()
      .parse(parseYaml(readFileSync(join(k8sDir, "kustomization.yaml"), "utf8")));
    expect([...k.resources].sort()).toEqual(manifestFiles.filter((f) => f !== "secret.example.yaml").sort());
  });
});

describe("deploy/kubernetes: the production shape", () => {
  it("runs every service, at least two replicas each, spread over nodes, rolled one at a time", () => {
    const deployments = cairnDeployments();
    expect([...deployments.keys()].sort()).toEqual([...STACK_SERVICES].sort());
    for (const [name, d] of deployments) {
      expect(d.spec.replicas, name).toBeGreaterThanOrEqual(2);
      expect(d.spec.template.spec.containers[0]?.command[1]).toBe(`services/${name}/dist/bundle/main.mjs`);
    }
  });

  it("runs the bundles with the Node flags and malloc settings the stack gives them (deploy/Dockerfile builds them)", () => {
    const dockerfile = readFileSync(join(deploy, "Dockerfile"), "utf8");
    expect(dockerfile).toContain(`NODE_OPTIONS="${SERVICE_NODE_OPTIONS}"`);
    // glibc's malloc settings as npm run stack, npm start and the harness give them.
    expect(Object.keys(SERVICE_MALLOC_ENV).length).toBeGreaterThan(0);
    for (const [name, value] of Object.entries(SERVICE_MALLOC_ENV))
      expect(dockerfile).toContain(`${name}="${value}"`);
    expect(dockerfile).toMatch(/RUN npm ci && npm run build/);
    for (const name of STACK_SERVICES)
      expect(dockerfile).toContain(`COPY --from=build /app/services/${name}/dist services/${name}/dist`);
  });

  it("gives each service a PodDisruptionBudget that keeps one replica through a drain", () => {
    const pdbs = z
      .array(
        z
          .object({
            apiVersion: z.literal("policy/v1"),
            kind: z.literal("PodDisruptionBudget"),
            metadata: z.object({ name: z.string(), namespace: z.literal("cairn"), labels }).strict(),
            spec: z
              .object({
                minAvailable: z.literal(1),
                selector: z
                  .object({ matchLabels: z.object({ "app.kubernetes.io/name": z.string() }).strict() })
                  .strict(),
              })
              .strict(),
          })
          .strict(),
      )
      .parse(byKind("PodDisruptionBudget"));
    for (const [name, d] of cairnDeployments()) {
      const pdb = pdbs.find((p) => p.spec.selector.matchLabels["app.kubernetes.io/name"] === name);
      expect(pdb, name).toBeDefined();
      expect(d.spec.template.metadata.labels["app.kubernetes.io/name"]).toBe(name);
      // minAvailable 1 of ≥ 2: a drain can always evict one.
      expect(pdb!.spec.minAvailable).toBeLessThan(d.spec.replicas);
    }
  });

  it("logs each service in as its own NATS user, the password from the Secret cairn-nats under its name", () => {
    const secrets = byKind("Secret").map((s) =>
      z
        .object({
          metadata: z.object({ name: z.string() }).passthrough(),
          stringData: z.record(z.string(), z.string()),
        })
        .passthrough()
        .parse(s),
    );
    const configMap = z
      .object({ data: z.record(z.string(), z.string()) })
      .passthrough()
      .parse(byKind("ConfigMap")[0]);
    for (const [name, d] of cairnDeployments()) {
      const env = d.spec.template.spec.containers[0]!.env;
      expect(
        env.find((e) => e.name === "NATS_USER"),
        name,
      ).toEqual({ name: "NATS_USER", value: name });
      expect(
        env.find((e) => e.name === "NATS_PASSWORD"),
        name,
      ).toEqual({
        name: "NATS_PASSWORD",
        valueFrom: { secretKeyRef: { name: "cairn-nats", key: name } },
      });
      for (const e of env) {
        if (!("valueFrom" in e)) continue;
        if ("configMapKeyRef" in e.valueFrom)
          expect(configMap.data, `${name} ${e.name}`).toHaveProperty([e.valueFrom.configMapKeyRef.key]);
        else {
          const ref = e.valueFrom.secretKeyRef;
          const secret = secrets.find((s) => s.metadata.name === ref.name);
          expect(secret?.stringData, `${name} ${e.name}`).toHaveProperty([ref.key]);
        }
      }
      // No password or URL with a user written in a manifest.
      for (const e of env) if ("value" in e) expect(e.value).not.toMatch(/:\/\/[^/]*@/);
    }
    expect(configMap.data.NATS_URL).not.toContain("@");
    expect(configMap.data.CAIRN_NATS_REPLICAS).toBe("3");
  });
});

describe("npm run stack, compose and Kubernetes give a service the same environment", () => {
  const compose = z
    .object({
      services: z.record(
        z.string(),
        z.object({ environment: z.record(z.string(), z.string()).optional() }).passthrough(),
      ),
    })
    .passthrough()
    .parse(parseYaml(readFileSync(join(deploy, "compose.yaml"), "utf8"), { merge: true }));

  for (const service of STACK_SERVICES) {
    it(`${service}: the same variables in all three, its own NATS user in each`, () => {
      const expected = stackEnvNames(service);
      const k8s = cairnDeployments()
        .get(service)!
        .spec.template.spec.containers[0]!.env.map((e) => e.name)
        .sort();
      const composeEnv = compose.services[service]?.environment ?? {};
      expect(k8s).toEqual(expected);
      expect(Object.keys(composeEnv).sort()).toEqual(expected);
      expect(composeEnv.NATS_USER).toBe(service);
      expect(composeEnv.NATS_PASSWORD).toBe(`\${${natsPasswordVariable(service)}:?set it in deploy/.env}`);
      expect(composeEnv.CAIRN_NATS_REPLICAS).toBe("3");
    });
  }

  it("compose runs three NATS servers routed to each other, two replicas of each service, Jaeger with OTLP in", () => {
    const s = compose.services;
    const nodes = ["nats-1", "nats-2", "nats-3"];
    for (const n of nodes) {
      const command = z.array(z.string()).parse(s[n]?.command);
      expect(command.slice(0, 3)).toEqual(["nats-server", "--config", "/etc/nats/nats.conf"]);
      expect(command[command.indexOf("--server_name") + 1]).toBe(n);
      expect(command[command.indexOf("--routes") + 1]).toBe(nodes.map((x) => `nats://${x}:6222`).join(","));
    }
    for (const service of STACK_SERVICES) expect(s[service]?.deploy, service).toEqual({ replicas: 2 });
    expect(s.jaeger?.image).toMatch(/^jaegertracing\/all-in-one:/);
    expect(s.jaeger?.environment?.COLLECTOR_OTLP_ENABLED).toBe("true");
    expect(s["nats-bootstrap"]?.environment?.CAIRN_NATS_REPLICAS).toBe("3");
    expect(s.postgres?.image).toMatch(/^postgres:/);
  });

  it("deploy/nats/nats.conf has exactly the users the shape logs in as, each password from its variable", () => {
    const conf = readFileSync(join(deploy, "nats/nats.conf"), "utf8");
    const users = [...conf.matchAll(/^\s*user: ([a-z-]+)\s*$/gm)].map((m) => m[1]);
    expect(users.sort()).toEqual([...NATS_USERS].sort());
    for (const u of NATS_USERS) expect(conf).toContain(`password: $${natsPasswordVariable(u)}`);
    const example = readFileSync(join(deploy, ".env.example"), "utf8");
    for (const u of NATS_USERS) expect(example).toContain(`${natsPasswordVariable(u)}=`);
  });
});
