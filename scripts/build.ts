/**
 * `npm run build`: one minified, tree-shaken ESM bundle per service (main.mjs and its chunks),
 * services/<name>/dist/bundle/main.mjs, which deploy/Dockerfile and `npm run stack` run.
 *
 * Why (docs/benchmarks.md, load): a service started from its main.ts costs 150–230 MB RSS at
 * idle, most of it loading code, not state — Node's type stripping (a WebAssembly compiler,
 * ~18 MB), then thousands of modules through the ESM loader (each its source string, its
 * module record and its compiled functions): @aws-sdk/client-ec2's dist-es alone is one file a
 * command, and @kubernetes/client-node one a model. A bundle holds only what is reachable,
 * in a few dozen files (Cairn's code in main.mjs, a chunk per package: chunkOf says why not
 * one), so the same process starts at a fraction of that. `npm start` still runs the
 * sources (nothing to build on a fresh clone); the bundles are for the production shapes.
 *
 * The depth dist/bundle/ is the depth of src/api/ on purpose: the projector finds its
 * dashboard at `import.meta.dirname/../../dashboard`, which holds from either place.
 *
 * Run: npm run build [-- service ...]   (default: every service)
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "rolldown";

export const SERVICES = ["provisioner", "installer", "node-ops", "idle-detector", "projector"] as const;

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Where `npm run build` puts a service's bundle. */
export function bundlePath(service: string): string {
  return join(root, "services", service, "dist", "bundle", "main.mjs");
}

/**
 * Packages left to Node's resolver at run time: those that read files beside their own
 * sources (swagger-ui's and fastify-static's assets) or load optional native parts (pg-native,
 * which pg requires only when asked for), which a bundle would cut from their files.
 */
const EXTERNAL = [/^@fastify\/swagger-ui/, /^@fastify\/static/, /^pg-native$/];

/**
 * The chunk of a module from node_modules: one per package (`@aws-sdk/client-ssm` →
 * `_aws-sdk_client-ssm`), null for Cairn's own code (main.mjs). V8 compiles a module's top
 * level in one zone, ~10× the module's source, and glibc keeps that peak in the process's
 * heap for its life after the zone is freed: one 1.6 MB bundle (the provisioner) peaked at
 * 16 MB of V8's malloced memory at start-up, node-ops' 3.8 MB one at 32 MB, and each kept
 * a `[heap]` of that size. A package a chunk, the peak is the largest package's
 * (docs/deploy.md, sizing). Not smaller pieces: chunks cut inside a package by size
 * import each other in cycles, and a module ran before one it needed (the AWS SDK's error
 * registry at start-up); Rolldown's strictExecutionOrder, which would order them, left
 * node-ops' start-up spinning.
 */
export function chunkOf(id: string): string | null {
  const m = /^.*[\\/]node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)[\\/]/.exec(id);
  return m ? m[1]!.replace(/[@\\/]/g, "_") : null;
}

/**
 * Builds `service` into `outDir` (default services/<name>/dist/bundle/): main.mjs, the
 * service's own code (and libs/), importing its packages' chunks beside it (chunkOf:
 * `<package>-<hash>.mjs`), each with its source map.
 */
export async function buildService(
  service: string,
  outDir = dirname(bundlePath(service)),
): Promise<{ file: string; bytes: number; chunks: number }> {
  // A build's chunks are named by their content: the previous build's would stay beside them.
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  await build({
    input: join(root, "services", service, "src", "main.ts"),
    platform: "node",
    external: EXTERNAL,
    // ESM first: a package's dist-es is a module a command (the AWS SDK) that tree shaking can
    // cut to what Cairn calls; its CommonJS build is one file of every command, kept whole.
    resolve: { mainFields: ["module", "main"] },
    logLevel: "warn",
    // Rolldown's default warnings (eval in a dependency, a namespace re-export) are the
    // dependencies' business; what would break is an unresolved import, which fails the build.
    onLog: (level, log, handler) => {
      if (level === "warn" && log.code !== "UNRESOLVED_IMPORT") return;
      handler(level, log);
    },
    output: {
      dir: outDir,
      entryFileNames: "main.mjs",
      // Beside main.mjs, not below: code that finds files from import.meta.dirname (the
      // projector's dashboard, ../../dashboard) sees the same depth from any chunk.
      chunkFileNames: "[name]-[hash].mjs",
      format: "esm",
      minify: true,
      // Chunks, not one file: each is compiled on its own, so V8's compile zone — and the
      // malloc heap it leaves behind — is the largest chunk's, not the whole bundle's
      // (chunkOf). Dynamic imports get chunks of their own too, loaded when called.
      codeSplitting: { groups: [{ name: chunkOf }] },
      sourcemap: true,
      // ASCII only (\u escapes): V8 keeps a source with one character past ASCII as a
      // two-byte string for the process's life — node-ops' 3.8 MB bundle was 7.6 MB of heap.
      charset: "ascii",
    },
  });
  let bytes = 0;
  let chunks = 0;
  for (const name of readdirSync(outDir)) {
    if (!name.endsWith(".mjs")) continue;
    const file = join(outDir, name);
    // `charset: "ascii"` escapes code, not comments: a licence comment's "ä" was enough for V8
    // to keep the whole source as a two-byte string (node-ops: 7.6 MB of heap for a 3.8 MB
    // file, heap snapshot). In a comment an escape is as good as the letter.
    const code = readFileSync(file, "utf8");
    if (/[\u0080-\u{10ffff}]/u.test(code))
      writeFileSync(
        file,
        code.replace(/[\u0080-\u{10ffff}]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`),
      );
    bytes += statSync(file).size;
    chunks++;
  }
  return { file: join(outDir, "main.mjs"), bytes, chunks };
}

/** The newest mtime (ms) of the files under `dir`, node_modules and dist aside. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name === "dist") continue;
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/**
 * Builds the service's bundle unless it is newer than every source it could hold (the
 * service's and the libs' files, the lockfile): a bench's smoke run or a second
 * `npm run stack` does not pay the build again. Returns whether it built.
 */
export async function buildIfStale(service: string): Promise<boolean> {
  let built = 0;
  try {
    built = statSync(bundlePath(service)).mtimeMs;
  } catch {
    // None yet.
  }
  const sources = Math.max(
    newest(join(root, "services", service)),
    newest(join(root, "libs")),
    statSync(join(root, "package-lock.json")).mtimeMs,
    statSync(join(root, "scripts", "build.ts")).mtimeMs,
  );
  if (built > sources) return false;
  await buildService(service);
  return true;
}

if (import.meta.main) {
  const wanted = process.argv.slice(2);
  const services = wanted.length > 0 ? wanted : SERVICES;
  for (const s of services) {
    if (!(SERVICES as readonly string[]).includes(s)) throw new Error(`build: no service ${s}`);
    const t0 = performance.now();
    const { file, bytes, chunks } = await buildService(s);
    console.log(
      `${relative(root, file)}  ${(bytes / 1024 / 1024).toFixed(1)} MB in ${chunks} files  ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }
}
