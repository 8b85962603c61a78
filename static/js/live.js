// The live connection: Socket.IO with the page's token, subscribed to one pipeline's room.
import { token } from "./api.js";

const EVENTS = ["snapshot", "run_status", "node_status", "log", "output_ready", "source_changed", "pipeline_changed",
  "trigger_status"];

/**
 * Connect and subscribe to `pipelineId`; handlers: onState(state) plus one function per event name.
 * Returns the socket (or null when the client library is missing).
 */
export function connectLive(pipelineId, handlers) {
  const state = (s) => handlers.onState && handlers.onState(s);
  state("connecting");
  let socket = null;
  import("/static/vendor/socket.io.esm.min.js").then(({ io }) => {
    socket = io({ auth: { token }, reconnectionDelayMax: 4000 });
    socket.on("connect", () => {
      state("connected");
      // Re-subscribe on every (re)connect: the server sends a fresh snapshot each time.
      socket.emit("subscribe", { pipeline_id: pipelineId });
    });
    socket.on("disconnect", () => state("disconnected"));
    socket.on("connect_error", (err) => {
      state(err && /token|auth|forbidden|origin/i.test(String(err.message)) ? "refused" : "disconnected");
    });
    for (const name of EVENTS) {
      socket.on(name, (payload) => {
        const fn = handlers[name];
        if (!fn) return;
        try {
          fn(payload || {});
        } catch (err) {
          console.error(`pipeloom: handling ${name} failed`, err);
        }
      });
    }
  }, (err) => {
    console.error("pipeloom: the Socket.IO client is missing; run `npm install`", err);
    state("missing");
  });
  return { get socket() { return socket; } };
}
