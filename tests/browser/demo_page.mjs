// Drives the demo page (static/index.html) in a real browser, Debian's Chromium, and checks that it shows
// the server's ticks. tests/browser.rs runs it against a freshly started mio-sse.
//
// usage: node demo_page.mjs <base-url> [screenshot.png] [--reconnect-signal <file>]
//
// 1. Opens <base-url> and waits until the page shows the stream: #state is "open", #count >= 2, #last is a
//    time "HH:MM:SS.mmm", and the newest message in #log is that same time.
// 2. With --reconnect-signal: prints "READY" on its own line, then waits until <file> exists (the caller
//    stops the server, starts a new one on the same port, then creates the file), then waits until the
//    page is "open" again with #reconnects >= 1 and newer ticks than before.
// 3. Writes the screenshot if asked, prints one JSON line {state, count, last, reconnects, ...}, exits 0.
//
// Any failure (a wait past its deadline, a console error, an uncaught page error, a non-200 page) prints
// the reason to stderr and exits 1. Browser console errors fail the run, with one exception: after READY,
// the network errors of /home/events itself are expected (the server is gone), and are counted instead.
//
// Rules: no fixed sleeps. Every wait polls a condition and has a deadline, and a failed wait says what it
// was waiting for and what the page showed at the end.
//
// Uses playwright-core, which brings no browser of its own: the browser is CHROMIUM, by default
// /usr/bin/chromium (Debian's package `chromium`).

import { access } from "node:fs/promises";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
// The same flags as this machine's probe: headless as root, and no background connections to Google's
// hosts (the machine has no internet; without these Chromium retries them at every start). playwright's
// launch() also gives the browser a fresh, empty user-data dir.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
// Per wait. Generous: the browser's own reconnection delay is ~3 s, and CI machines are shared.
const DEADLINE_MS = 20_000;
// How often a wait looks at the page again.
const POLL_MS = 100;
const TIME_OF_DAY = /^\d\d:\d\d:\d\d\.\d\d\d$/;
const DIGITS = /^\d+$/;

class Failure extends Error {}

function usage(problem) {
  throw new Failure(`${problem}\nusage: node demo_page.mjs <base-url> [screenshot.png] [--reconnect-signal <file>]`);
}

function parseArgs(argv) {
  const options = { baseUrl: null, screenshot: null, reconnectSignal: null };
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--reconnect-signal") {
      options.reconnectSignal = argv[++i] ?? usage("--reconnect-signal needs a file name");
    } else if (argv[i].startsWith("--")) {
      usage(`unknown option ${argv[i]}`);
    } else {
      positional.push(argv[i]);
    }
  }
  if (positional.length < 1 || positional.length > 2) usage("expected a base URL and at most one screenshot path");
  [options.baseUrl, options.screenshot = null] = positional;
  return options;
}

/** What the page shows now: the text of the elements the page promises to keep stable. */
function readPage(page) {
  return page.evaluate(() => {
    const text = (id) => document.getElementById(id)?.textContent ?? null;
    const logMessages = Array.from(
      document.querySelectorAll('#log li[data-kind="message"] .data'),
      (item) => item.textContent,
    );
    return {
      state: text("state"),
      count: text("count"),
      last: text("last"),
      reconnects: text("reconnects"),
      logMessages, // newest first
    };
  });
}

/** Why `shown` is not yet a page that is receiving ticks, or null if it is. */
function notStreaming(shown, minCount) {
  if (shown.state !== "open") return `#state is ${JSON.stringify(shown.state)}, want "open"`;
  if (!DIGITS.test(shown.count ?? "")) return `#count is ${JSON.stringify(shown.count)}, want digits`;
  if (Number(shown.count) < minCount) return `#count is ${shown.count}, want >= ${minCount}`;
  if (!DIGITS.test(shown.reconnects ?? "")) return `#reconnects is ${JSON.stringify(shown.reconnects)}, want digits`;
  if (!TIME_OF_DAY.test(shown.last ?? "")) return `#last is ${JSON.stringify(shown.last)}, want HH:MM:SS.mmm`;
  if (shown.logMessages.length < 2) return `#log shows ${shown.logMessages.length} messages, want >= 2`;
  if (shown.logMessages[0] !== shown.last) {
    return `newest message in #log is ${JSON.stringify(shown.logMessages[0])}, not #last ${JSON.stringify(shown.last)}`;
  }
  return null;
}

/**
 * Polls `check` (async, returns null when satisfied or a reason why not) until it is satisfied or
 * DEADLINE_MS passes; `what` names the wait in the failure. Also fails at once if `errors()` finds any.
 */
async function waitFor(what, check, errors, describe = async () => "") {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const unexpected = errors();
    if (unexpected.length > 0) {
      throw new Failure(`browser reported errors while waiting for ${what}:\n  ${unexpected.join("\n  ")}`);
    }
    const why = await check();
    if (why === null) return;
    if (Date.now() >= deadline) {
      throw new Failure(`timed out after ${DEADLINE_MS} ms waiting for ${what}: ${why}${await describe()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function run(options) {
  if (!existsSync(CHROMIUM)) {
    throw new Failure(`no browser at ${CHROMIUM} (install Debian's chromium, or set CHROMIUM)`);
  }
  const eventsUrl = new URL("/home/events", options.baseUrl).href;

  // Everything the browser complains about. After READY (the server is about to go away), only the
  // failures of the event stream's own requests are expected; they are counted, not failed on.
  let outageExpected = false;
  let outageErrors = 0;
  const problems = [];
  const isStreamNetworkError = (message) =>
    message.location().url === eventsUrl && /net::ERR_[A-Z_]+/.test(message.text());

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: DEADLINE_MS,
  });
  try {
    const page = await browser.newPage({ viewport: { width: 900, height: 1000 } });
    page.on("console", (message) => {
      if (message.type() !== "error") return;
      if (outageExpected && isStreamNetworkError(message)) {
        outageErrors += 1;
        process.stderr.write(`demo_page: expected while the server is away: ${message.text()}\n`);
        return;
      }
      const where = message.location().url ? ` (at ${message.location().url})` : "";
      problems.push(`console error: ${message.text()}${where}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    const errors = () => problems;

    let shown = null;
    const describe = async () => `\npage showed: ${JSON.stringify(shown)}`;
    const streaming = (minCount, extra = () => null) => async () => {
      shown = await readPage(page);
      return notStreaming(shown, minCount) ?? extra(shown);
    };

    const response = await page.goto(options.baseUrl, { timeout: DEADLINE_MS });
    if (!response || response.status() !== 200) {
      throw new Failure(`GET ${options.baseUrl} answered ${response ? response.status() : "nothing"}, want 200`);
    }
    await waitFor("the page to show >= 2 ticks on an open stream", streaming(2), errors, describe);

    if (options.reconnectSignal !== null) {
      const before = shown;
      outageExpected = true;
      process.stdout.write("READY\n");
      await waitFor(
        `the signal file ${options.reconnectSignal}`,
        () => access(options.reconnectSignal).then(() => null, () => "it does not exist yet"),
        errors,
      );
      const cameBack = (now) => {
        if (Number(now.reconnects) < 1) return `#reconnects is ${now.reconnects}, want >= 1`;
        if (Number(now.count) < Number(before.count) + 2) {
          return `#count is ${now.count}, want >= 2 more than the ${before.count} before the restart`;
        }
        if (now.last === before.last) return `#last is still ${now.last}, as before the restart`;
        return null;
      };
      await waitFor("the page to reconnect and show new ticks", streaming(2, cameBack), errors, describe);
    }

    if (options.screenshot !== null) {
      await page.screenshot({ path: options.screenshot, fullPage: true });
    }
    const report = {
      state: shown.state,
      count: Number(shown.count),
      last: shown.last,
      reconnects: Number(shown.reconnects),
    };
    if (options.reconnectSignal !== null) report.outage_errors = outageErrors;
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    await browser.close();
  }
}

try {
  await run(parseArgs(process.argv.slice(2)));
  process.exitCode = 0;
} catch (error) {
  const why = error instanceof Failure ? error.message : error.stack;
  process.stderr.write(`demo_page: FAIL: ${why}\n`);
  process.exitCode = 1;
}
