// A client of mio-sse built on the `eventsource` npm package (EventSource/eventsource: the standard's
// EventSource API for Node.js, over fetch), to check our streams against a parser that follows the
// standard and is not ours. tests/clients.rs runs it.
//
// usage: node eventsource_client.mjs <url> [--types message,news,lost] [--events N] [--deadline-ms MS]
//
// Opens one EventSource on <url>, listens for each event type in --types (default "message"; named
// events reach only listeners for their name, so the caller lists the names it expects), and prints one
// JSON line on stdout for everything that happens, as it happens:
//
//   {"kind":"request","at":MS,"lastEventId":"..."}  the library asks fetch for the stream (the first time
//                                                    and at each reconnection); lastEventId is the
//                                                    Last-Event-ID header it sent, "" when none
//   {"kind":"open","at":MS}
//   {"kind":"error","at":MS,"readyState":N,"message":"..."}   the stream broke or a connection attempt
//                                                    failed; readyState 0 means it will try again
//   {"kind":"event","at":MS,"type":"...","data":"...","lastEventId":"..."}
//   {"kind":"done","at":MS,"events":N,"why":"..."}  last line: N events seen, then --events reached or
//                                                    --deadline-ms passed
//
// MS is milliseconds since the script started (performance.now()), for measuring reconnection delays.
// It exits 0 after "done"; the caller may also just kill it. Bad usage exits 2.

import { EventSource } from "eventsource";

function usage(problem) {
  process.stderr.write(
    `eventsource_client: ${problem}\n` +
      "usage: node eventsource_client.mjs <url> [--types message,news,lost] [--events N] [--deadline-ms MS]\n",
  );
  process.exit(2);
}

function parseArgs(argv) {
  const options = { url: null, types: ["message"], events: Infinity, deadlineMs: 60_000 };
  const number = (flag, text) => {
    if (!/^\d+$/.test(text ?? "")) usage(`${flag} needs a whole number`);
    return Number(text);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--types") options.types = (argv[++i] ?? usage("--types needs names")).split(",");
    else if (arg === "--events") options.events = number(arg, argv[++i]);
    else if (arg === "--deadline-ms") options.deadlineMs = number(arg, argv[++i]);
    else if (arg.startsWith("--")) usage(`unknown option ${arg}`);
    else if (options.url === null) options.url = arg;
    else usage(`unexpected argument ${arg}`);
  }
  if (options.url === null) usage("no URL");
  return options;
}

const options = parseArgs(process.argv.slice(2));
const print = (fields) => process.stdout.write(`${JSON.stringify({ ...fields, at: Math.round(performance.now()) })}\n`);

// The library's documented hook: it calls this `fetch` for every connection attempt, with the headers it
// chose (Accept, and Last-Event-ID once it has seen an id). We only look, then call the real fetch.
function watchedFetch(input, init) {
  const headers = new Headers(init?.headers);
  print({ kind: "request", lastEventId: headers.get("last-event-id") ?? "" });
  return fetch(input, init);
}

const source = new EventSource(options.url, { fetch: watchedFetch });
let seen = 0;

function finish(why) {
  source.close();
  clearTimeout(deadline);
  print({ kind: "done", events: seen, why });
}

const deadline = setTimeout(() => finish(`deadline of ${options.deadlineMs} ms`), options.deadlineMs);

source.addEventListener("open", () => print({ kind: "open" }));
source.addEventListener("error", (error) =>
  print({ kind: "error", readyState: source.readyState, message: error.message ?? "" }),
);
for (const type of options.types) {
  source.addEventListener(type, (event) => {
    if (source.readyState === EventSource.CLOSED) return; // after finish()
    seen += 1;
    print({ kind: "event", type: event.type, data: event.data, lastEventId: event.lastEventId });
    if (seen >= options.events) finish(`${seen} events`);
  });
}
