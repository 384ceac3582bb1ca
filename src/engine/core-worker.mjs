// Worker entry: a worker does not inherit the main thread's TypeScript loader, so register it here.
import { register } from "tsx/esm/api";

register();
await import("./core-worker.ts");
