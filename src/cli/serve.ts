/** `loom serve`: the OpenAI-compatible HTTP server, with graceful shutdown on SIGTERM / SIGINT. */
import { type Command, InvalidArgumentError } from "commander";
import pino from "pino";
import type { Engine } from "../engine/engine.ts";
import { createEngine } from "../engine/engine-client.ts";
import { addEngineFlags, engineOptionsFrom, parseBytes } from "../engine/options.ts";
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_QUEUED_REQUESTS, startServer } from "../server/index.ts";

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

function intOption(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be an integer in [${min}, ${max}], got "${v}"`);
    }
    return n;
  };
}

function bytesOption(v: string): number {
  try {
    const n = parseBytes(v);
    if (n < 1) throw new Error("must be at least 1 byte");
    return n;
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

function secondsOption(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError(`--shutdown-timeout must be seconds >= 0, got "${v}"`);
  return n;
}

function levelOption(v: string): string {
  if (!(LOG_LEVELS as readonly string[]).includes(v)) {
    throw new InvalidArgumentError(`--log-level must be one of ${LOG_LEVELS.join(", ")}`);
  }
  return v;
}

export function registerServe(program: Command): void {
  const cmd = program
    .command("serve")
    .description("serve the model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, ...)")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "port to listen on (0 = any free port)", intOption("--port", 0, 65535), 8000)
    .option(
      "--api-key <key>",
      "require `Authorization: Bearer <key>` (default: $LOOM_API_KEY; /health and /metrics stay open)",
    )
    .option("--max-body-bytes <bytes>", "largest request body (bytes, or 1MiB...)", bytesOption, DEFAULT_MAX_BODY_BYTES)
    .option(
      "--max-queued-requests <n>",
      "answer 429 once this many requests wait for the engine",
      intOption("--max-queued-requests", 1),
      DEFAULT_MAX_QUEUED_REQUESTS,
    )
    .option(
      "--shutdown-timeout <seconds>",
      "on SIGTERM/SIGINT, how long in-flight requests may finish",
      secondsOption,
      30,
    )
    .option("--log-level <level>", `log level: ${LOG_LEVELS.join(" | ")}`, levelOption, "info");
  addEngineFlags(cmd).action(async (o: Record<string, unknown>) => {
    const log = pino({ level: String(o.logLevel), timestamp: pino.stdTimeFunctions.isoTime });
    const engineOpts = engineOptionsFrom(o);
    const apiKey = (o.apiKey as string | undefined) ?? (process.env.LOOM_API_KEY || undefined);
    const shutdownMs = Number(o.shutdownTimeout) * 1000;

    // Listen first so /health answers 503 while the model loads.
    log.info({ model: engineOpts.model, backend: engineOpts.backend }, "loading model");
    const enginePromise = createEngine(engineOpts, log);
    let engine: Engine | null = null;
    enginePromise.then(
      (e) => {
        engine = e;
      },
      () => {},
    );
    const server = await startServer(enginePromise, {
      host: String(o.host),
      port: Number(o.port),
      apiKey,
      maxBodyBytes: Number(o.maxBodyBytes),
      maxQueuedRequests: Number(o.maxQueuedRequests),
      logger: log,
    }).catch(async (e) => {
      // e.g. EADDRINUSE: do not leave the engine thread running.
      await enginePromise.then((eng) => eng.close()).catch(() => {});
      throw e;
    });
    log.info({ url: server.url }, "listening (503 until the model is loaded)");

    let stopping = false;
    const shutdown = async (signal: string) => {
      if (stopping) {
        log.warn({ signal }, "second signal: exiting now");
        process.exit(1);
      }
      stopping = true;
      log.info({ signal, timeoutSeconds: shutdownMs / 1000 }, "shutting down: draining requests");
      try {
        await server.drain(shutdownMs);
        await (engine as Engine | null)?.close();
        log.info("stopped");
        process.exit(0);
      } catch (err) {
        log.error({ err }, "error during shutdown");
        process.exit(1);
      }
    };
    // Handlers catch their own errors; anything that still escapes is logged with its stack. A stray rejected
    // promise does not take the server down; an uncaught exception leaves state unknown, so the process exits.
    process.on("unhandledRejection", (err) => log.error({ err }, "unhandled promise rejection"));
    process.on("uncaughtException", (err) => {
      log.fatal({ err }, "uncaught exception; exiting");
      process.exit(1);
    });
    process.on("SIGTERM", () => void shutdown("SIGTERM"));
    process.on("SIGINT", () => void shutdown("SIGINT"));

    try {
      await server.ready;
    } catch (err) {
      log.fatal({ err }, "the engine failed to start");
      await server.close();
      throw err;
    }
    const info = (engine as Engine | null)!.info;
    log.info(
      {
        url: server.url,
        model: info.modelName,
        modelDir: info.modelDir,
        backend: info.backend,
        dtype: info.dtype,
        maxModelLen: info.maxModelLen,
        kvCapacityTokens: info.kvCapacityTokens,
        kvCacheDtype: info.kvCacheDtype,
        kvBlocks: info.numBlocks,
        blockSize: info.blockSize,
        scheduler: info.scheduler,
        auth: apiKey !== undefined,
      },
      `serving ${info.modelName} on ${server.url} (${info.backend}, ${info.dtype}, KV cache ${info.kvCapacityTokens} tokens of ${info.kvCacheDtype})`,
    );
    // The listening server keeps the process alive; a signal ends it through shutdown().
  });
}
