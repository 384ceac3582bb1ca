/**
 * Starts `loom serve` as a child process on a free loopback port, waits for /health, and stops it again
 * (SIGTERM, then SIGKILL after a grace period). Children still alive when this process exits are killed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { healthy } from "./server-api.ts";

export const LOOM_BIN = fileURLToPath(new URL("../../bin/loom.js", import.meta.url));

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const c of live) {
      try {
        c.kill("SIGKILL");
      } catch {}
    }
  });
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error("no free port"))));
    });
  });
}

export interface LoomServer {
  url: string;
  port: number;
  args: string[];
  child: ChildProcess;
  /** The last lines the server wrote (for error messages). */
  tail(): string;
  /** Warnings and errors the server logged so far (pino JSON lines at level ≥ 40), as messages. */
  warnings(): string[];
  /** The fields of the server's "serving …" log line (backend, scheduler, dtype...), once it was seen. */
  serving: Record<string, unknown> | null;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** `serve` flags besides --host/--port (engine flags, --scheduler...). */
  args: string[];
  /** How long the model may take to load. */
  startTimeoutMs?: number;
  logLevel?: string;
  /** Environment additions for the child. */
  env?: Record<string, string>;
}

async function startOnce(port: number, o: StartOptions): Promise<LoomServer> {
  installExitHook();
  const args = [
    LOOM_BIN,
    "serve",
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--log-level",
    // info: the "serving …" line tells which backend really runs (auto may fall back to reference).
    o.logLevel ?? "info",
    "--shutdown-timeout",
    "5",
    ...o.args,
  ];
  const child = spawn(process.execPath, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...o.env },
  });
  live.add(child);
  const lines: string[] = [];
  const warnings: string[] = [];
  let serving: Record<string, unknown> | null = null;
  let partial = "";
  const keep = (d: Buffer) => {
    const text = partial + d.toString("utf8");
    const parts = text.split("\n");
    partial = (parts.pop() ?? "").slice(-4096);
    for (const l of parts) {
      if (!l.trim()) continue;
      lines.push(l.slice(0, 500));
      if (!l.startsWith("{")) continue;
      try {
        const j = JSON.parse(l) as { level?: number; msg?: unknown };
        if ((j.level ?? 0) >= 40 && typeof j.msg === "string" && warnings.length < 20) warnings.push(j.msg);
        if (serving === null && typeof j.msg === "string" && j.msg.startsWith("serving ")) serving = j;
      } catch {}
    }
    if (lines.length > 40) lines.splice(0, lines.length - 40);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exit = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      exited = { code, signal };
      live.delete(child);
      resolve();
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const server: LoomServer = {
    url,
    port,
    args: args.slice(2),
    child,
    tail: () => lines.slice(-12).join("\n"),
    warnings: () => [...warnings],
    get serving() {
      return serving;
    },
    async stop() {
      if (exited) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exit;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + (o.startTimeoutMs ?? 180_000);
  while (Date.now() < deadline) {
    if (exited) {
      const e = exited as { code: number | null; signal: NodeJS.Signals | null };
      throw Object.assign(
        new Error(`loom serve exited (${e.signal ?? `code ${e.code}`}) before it was healthy:\n${server.tail()}`),
        { tail: server.tail() },
      );
    }
    if (await healthy({ baseUrl: url }, 1_000)) {
      // The "serving …" line is logged as the engine comes up, about when /health turns 200.
      for (let i = 0; i < 20 && serving === null && !exited; i++) await new Promise((r) => setTimeout(r, 100));
      return server;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await server.stop();
  throw new Error(`loom serve was not healthy within ${(o.startTimeoutMs ?? 180_000) / 1000} s:\n${server.tail()}`);
}

/** Starts `loom serve` on a free port (a few tries, should another process take the port first). */
export async function startLoomServer(o: StartOptions): Promise<LoomServer> {
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(await freePort(), o);
    } catch (e) {
      last = e;
      if (!/EADDRINUSE/.test(String((e as { tail?: string }).tail ?? ""))) throw e;
    }
  }
  throw last;
}
