// Drives the demo page (static/index.html) in a real browser, Debian's Chromium, step by step as the
// caller asks. tests/browser.rs runs it against a freshly started mio-sse.
//
// usage: node demo_page.mjs <base-url>
//
// The driver opens <base-url> and waits until the page shows the stream: #state is "open", #count >= 2,
// #last is a time "HH:MM:SS.mmm", and the newest tick in #log is that same time. Then it prints its first
// line on stdout, the page's state (see `status` below), and reads commands from stdin, one a line. It
// answers each with exactly one line on stdout, a flat JSON object (strings and numbers only), and exits
// 0 at the end of stdin. Commands:
//
//   status                 the page now: {state, count, last, reconnects, last_id}
//   outage                 the server is about to go away: from now until `reconnected`, network errors
//                          of /home/events and /metrics are expected (counted, not failed on)
//   reconnected            waits until the page has reconnected since `outage` and shows >= 2 newer ticks;
//                          answers `status` + outage_errors + last_event_id_sent (the Last-Event-ID header
//                          of the browser's last request for /home/events, "" if none)
//   published <n>          waits until #published shows >= n events; answers {count, ids, names, data,
//                          lost, last_id}: ids, names and data comma-separated, OLDEST first; lost is the
//                          number of `lost` signals shown
//   publish <text>         types <text> into the form, submits it, waits for #publish-result to show an id
//                          and for #published to show the event with that id; answers {id, result, name,
//                          data}: the id the form showed, its text, and the event as #published shows it
//   publish-named <name> <text>   the same with the form's event name set
//   publish-to <topic> <name> <text>   the same with the form's topic set (and its event name, "-" for
//                          none); the page must be on <topic>
//   publish-elsewhere <topic> <text>   publishes from the form to a topic the page is not on; waits for
//                          #publish-result to show an id; answers {id, result}
//   subscribe <topics>     types <topics> (comma-separated, "-" for none: the default topic) into the
//                          subscription form and submits it; waits until #stream-url is the stream's new
//                          URL and it is open; answers {url, state, note}
//   listen <names>         types <names> (comma-separated) into the named-events field; answers {listen}
//   chart                  waits until the figures and the chart show at least three polls of /metrics;
//                          answers {streams, events_per_second, points, events_pixels, streams_pixels}:
//                          the last two count the canvas pixels drawn in each series' colour
//   screenshot <path>      a full-page screenshot; answers {path}
//
// Any failure (a wait past its deadline, a console error, an uncaught page error, a non-200 page, an
// unknown command) prints the reason to stderr and exits 1. Browser console errors fail the run, with
// one exception: between `outage` and `reconnected`, the network errors of /home/events and /metrics
// themselves are expected (the server is gone), and are counted instead.
//
// Rules: no fixed sleeps. Every wait polls a condition and has a deadline, and a failed wait says what it
// was waiting for and what the page showed at the end.
//
// Uses playwright-core, which brings no browser of its own: the browser is CHROMIUM, by default
// /usr/bin/chromium (Debian's package `chromium`).

import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
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
// More flags for this run, space-separated, from the caller: tests/browser.rs passes
// --ignore-certificate-errors-spki-list=<hash> to trust its test certificate over HTTPS (and only it).
if (process.env.CHROMIUM_EXTRA_ARGS) CHROMIUM_ARGS.push(...process.env.CHROMIUM_EXTRA_ARGS.split(" ").filter(Boolean));
// Per wait. Generous: the browser's own reconnection delay is ~3 s, and CI machines are shared.
const DEADLINE_MS = 20_000;
// How often a wait looks at the page again.
const POLL_MS = 100;
const TIME_OF_DAY = /^\d\d:\d\d:\d\d\.\d\d\d$/;
const DIGITS = /^\d+$/;

class Failure extends Error {}

/** What the page shows now: the text of the elements the page promises to keep stable. */
function readPage(page) {
  return page.evaluate(() => {
    const text = (id) => document.getElementById(id)?.textContent ?? null;
    const logMessages = Array.from(
      document.querySelectorAll('#log li[data-kind="message"] .data'),
      (item) => item.textContent,
    );
    // Oldest first, as the caller publishes them.
    const published = Array.from(document.querySelectorAll('#published li[data-kind="event"]'), (item) => ({
      id: item.querySelector(".id")?.textContent ?? null,
      name: item.querySelector(".name")?.textContent ?? null,
      data: item.querySelector(".data")?.textContent ?? null,
    })).reverse();
    const chart = document.getElementById("chart");
    return {
      state: text("state"),
      count: text("count"),
      last: text("last"),
      reconnects: text("reconnects"),
      lastId: text("last-id"),
      logMessages, // newest first
      published,
      lost: document.querySelectorAll('#published li[data-kind="lost"]').length,
      publishOutcome: document.getElementById("publish-result")?.dataset.outcome ?? null,
      publishId: document.getElementById("publish-result")?.dataset.id ?? null,
      publishResult: text("publish-result"),
      streamUrl: text("stream-url"),
      note: text("note"),
      topics: document.getElementById("topics")?.value ?? null,
      publishTopic: document.getElementById("publish-topic")?.value ?? null,
      listen: document.getElementById("listen")?.value ?? null,
      streams: text("streams"),
      eventsPerSecond: text("events-per-second"),
      chartPoints: Number(chart?.dataset.points ?? 0),
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
  if (shown.logMessages.length < 2) return `#log shows ${shown.logMessages.length} ticks, want >= 2`;
  if (shown.logMessages[0] !== shown.last) {
    return `newest tick in #log is ${JSON.stringify(shown.logMessages[0])}, not #last ${JSON.stringify(shown.last)}`;
  }
  return null;
}

/** The answer to `status`. */
function statusOf(shown) {
  return {
    state: shown.state,
    count: Number(shown.count),
    last: shown.last,
    reconnects: Number(shown.reconnects),
    last_id: shown.lastId,
  };
}

/**
 * For each series of the chart, how many of the canvas's pixels have exactly its colour (the page's CSS
 * variables --events and --streams): its line and the dot on its newest point. Titles and axes are grey.
 */
function seriesPixels(page) {
  return page.evaluate(() => {
    const canvas = document.getElementById("chart");
    const probe = canvas.ownerDocument.createElement("canvas").getContext("2d");
    const rgbOf = (variable) => {
      probe.fillStyle = getComputedStyle(document.documentElement).getPropertyValue(variable).trim();
      probe.fillRect(0, 0, 1, 1);
      return Array.from(probe.getImageData(0, 0, 1, 1).data.slice(0, 3));
    };
    const colours = { events: rgbOf("--events"), streams: rgbOf("--streams") };
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const counts = { events: 0, streams: 0 };
    for (let i = 0; i < pixels.length; i += 4) {
      for (const [series, [r, g, b]] of Object.entries(colours)) {
        if (pixels[i] === r && pixels[i + 1] === g && pixels[i + 2] === b && pixels[i + 3] === 255) {
          counts[series] += 1;
        }
      }
    }
    return counts;
  });
}

async function run(baseUrl) {
  if (!existsSync(CHROMIUM)) {
    throw new Failure(`no browser at ${CHROMIUM} (install Debian's chromium, or set CHROMIUM)`);
  }
  const eventsUrl = new URL("/home/events", baseUrl).href;
  const metricsUrl = new URL("/metrics", baseUrl).href;

  // Everything the browser complains about. Between `outage` and `reconnected`, only the failures of the
  // requests that poll the server (the event stream and /metrics) are expected; they are counted.
  let outageExpected = false;
  let outageErrors = 0;
  const problems = [];
  const isPollingNetworkError = (message) => {
    const where = message.location().url;
    const aboutPolling = where === eventsUrl || where === metricsUrl || message.text().includes(metricsUrl);
    return aboutPolling && /net::ERR_[A-Z_]+/.test(message.text());
  };
  const errors = () => problems;

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
      if (outageExpected && isPollingNetworkError(message)) {
        outageErrors += 1;
        process.stderr.write(`demo_page: expected while the server is away: ${message.text()}\n`);
        return;
      }
      const where = message.location().url ? ` (at ${message.location().url})` : "";
      problems.push(`console error: ${message.text()}${where}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    // The Last-Event-ID the browser sent with its latest request for the stream.
    let lastEventIdSent = "";
    page.on("request", async (request) => {
      if (request.url() !== eventsUrl || request.method() !== "GET") return;
      const headers = await request.allHeaders();
      lastEventIdSent = headers["last-event-id"] ?? "";
    });

    let shown = null;
    const describe = async () => `\npage showed: ${JSON.stringify(shown)}`;
    const look = (check) => async () => {
      shown = await readPage(page);
      return check(shown);
    };
    const streaming = (minCount, extra = () => null) => look((now) => notStreaming(now, minCount) ?? extra(now));

    /**
     * Polls `check` (async, returns null when satisfied or a reason why not) until it is satisfied or
     * DEADLINE_MS passes; `what` names the wait in the failure. Also fails at once on any browser error.
     */
    async function waitFor(what, check) {
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

    const response = await page.goto(baseUrl, { timeout: DEADLINE_MS });
    if (!response || response.status() !== 200) {
      throw new Failure(`GET ${baseUrl} answered ${response ? response.status() : "nothing"}, want 200`);
    }
    await waitFor("the page to show >= 2 ticks on an open stream", streaming(2));
    const answer = (fields) => process.stdout.write(`${JSON.stringify(fields)}\n`);
    answer(statusOf(shown));

    let beforeOutage = null; // what the page showed at `outage`
    // Each command gets the rest of its line ("" if none) and returns its answer.
    const commands = {
      status: async () => {
        shown = await readPage(page);
        return statusOf(shown);
      },
      outage: async () => {
        beforeOutage = await readPage(page);
        outageExpected = true;
        return { ok: true };
      },
      reconnected: async () => {
        if (beforeOutage === null) throw new Failure("`reconnected` before `outage`");
        const before = beforeOutage;
        const cameBack = (now) => {
          if (Number(now.reconnects) <= Number(before.reconnects)) {
            return `#reconnects is ${now.reconnects}, want more than the ${before.reconnects} before the outage`;
          }
          if (Number(now.count) < Number(before.count) + 2) {
            return `#count is ${now.count}, want >= 2 more than the ${before.count} before the outage`;
          }
          if (now.last === before.last) return `#last is still ${now.last}, as before the outage`;
          return null;
        };
        await waitFor("the page to reconnect and show new ticks", streaming(2, cameBack));
        outageExpected = false;
        return { ...statusOf(shown), outage_errors: outageErrors, last_event_id_sent: lastEventIdSent };
      },
      published: async (arg) => {
        if (!DIGITS.test(arg)) throw new Failure(`published needs a count, got ${JSON.stringify(arg)}`);
        const want = Number(arg);
        await waitFor(
          `#published to show ${want} events`,
          look((now) => (now.published.length >= want ? null : `it shows ${now.published.length}`)),
        );
        const list = (key) => shown.published.map((event) => event[key]).join(",");
        return {
          count: shown.published.length,
          ids: list("id"),
          names: list("name"),
          data: list("data"),
          lost: shown.lost,
          last_id: shown.lastId,
        };
      },
      publish: (text) => publishFromForm("", text),
      "publish-named": (rest) => {
        const [name, ...words] = rest.split(" ");
        return publishFromForm(name, words.join(" "));
      },
      "publish-to": (rest) => {
        const [topic, name, ...words] = rest.split(" ");
        return publishFromForm(name === "-" ? "" : name, words.join(" "), topic);
      },
      "publish-elsewhere": async (rest) => {
        const [topic, ...words] = rest.split(" ");
        const { id } = await submitForm("", words.join(" "), topic);
        return { id, result: shown.publishResult };
      },
      subscribe: async (arg) => {
        const list = arg === "-" ? "" : arg;
        const want = list
          .split(",")
          .map((topic) => topic.trim())
          .filter((topic) => topic !== "");
        const query = new URLSearchParams(want.map((topic) => ["topic", topic])).toString();
        const url = query === "" ? "/home/events" : `/home/events?${query}`;
        const before = await readPage(page);
        await page.fill("#topics", list);
        await page.click("#subscribe-button");
        await waitFor(
          `the page to open ${url}`,
          look((now) => {
            if (now.streamUrl !== url) return `#stream-url is ${JSON.stringify(now.streamUrl)}`;
            if (now.state !== "open") return `#state is ${JSON.stringify(now.state)}`;
            if (now.note === before.note) return `#note still says ${JSON.stringify(now.note)}`;
            return null;
          }),
        );
        return { url: shown.streamUrl, state: shown.state, note: shown.note, publish_topic: shown.publishTopic };
      },
      listen: async (names) => {
        await page.fill("#listen", names);
        shown = await readPage(page);
        return { listen: shown.listen };
      },
      chart: async () => {
        const figures = (now) => {
          if (!DIGITS.test(now.streams ?? "") || Number(now.streams) < 1) {
            return `#streams is ${JSON.stringify(now.streams)}, want a number >= 1`;
          }
          if (!/^\d+\.\d$/.test(now.eventsPerSecond ?? "")) {
            return `#events-per-second is ${JSON.stringify(now.eventsPerSecond)}, want a rate like 3.3`;
          }
          // Three polls: two rates, so each series has a line, not just a dot.
          if (now.chartPoints < 3) return `the chart has ${now.chartPoints} points, want >= 3`;
          return null;
        };
        await waitFor("the server figures and the chart", look(figures));
        const pixels = await seriesPixels(page);
        return {
          streams: Number(shown.streams),
          events_per_second: Number(shown.eventsPerSecond),
          points: shown.chartPoints,
          events_pixels: pixels.events,
          streams_pixels: pixels.streams,
        };
      },
      screenshot: async (path) => {
        if (path === "") throw new Failure("screenshot needs a path");
        await page.screenshot({ path, fullPage: true });
        return { path };
      },
    };

    /**
     * Submits the page's form; `name` "" leaves the event unnamed; `topic` undefined leaves the form's
     * topic as the page set it. Waits for #publish-result to show the new id; returns {id}.
     */
    async function submitForm(name, text, topic) {
      const before = await readPage(page);
      if (topic !== undefined) await page.fill("#publish-topic", topic);
      await page.fill("#publish-event", name);
      await page.fill("#publish-data", text);
      await page.click("#publish-button");
      await waitFor(
        "#publish-result to show the new event's id",
        look((now) => {
          if (now.publishOutcome !== "ok") return `#publish-result says ${JSON.stringify(now.publishResult)}`;
          if (now.publishId === before.publishId) return `#publish-result still shows id ${now.publishId}`;
          return null;
        }),
      );
      return { id: shown.publishId };
    }

    /** [submitForm], then waits for #published to show the event; answers {id, result, name, data}. */
    async function publishFromForm(name, text, topic) {
      const { id } = await submitForm(name, text, topic);
      await waitFor(
        `#published to show event ${id}`,
        look((now) => (now.published.some((event) => event.id === id) ? null : "not there yet")),
      );
      const event = shown.published.find((e) => e.id === id);
      return { id, result: shown.publishResult, name: event.name, data: event.data };
    }

    for await (const line of createInterface({ input: process.stdin })) {
      if (line.trim() === "") continue;
      const space = line.indexOf(" ");
      const [name, arg] = space < 0 ? [line, ""] : [line.slice(0, space), line.slice(space + 1)];
      const command = commands[name];
      if (!command) throw new Failure(`unknown command ${JSON.stringify(line)}`);
      answer(await command(arg));
    }
    if (problems.length > 0) {
      throw new Failure(`browser reported errors:\n  ${problems.join("\n  ")}`);
    }
  } finally {
    await browser.close();
  }
}

try {
  const args = process.argv.slice(2);
  if (args.length !== 1 || args[0].startsWith("--")) {
    throw new Failure("usage: node demo_page.mjs <base-url>, then commands on stdin (see the top of the file)");
  }
  await run(args[0]);
  process.exitCode = 0;
} catch (error) {
  const why = error instanceof Failure ? error.message : error.stack;
  process.stderr.write(`demo_page: FAIL: ${why}\n`);
  process.exitCode = 1;
}
