// A retailcrm-poller webhook receiver for Express, the usual downstream of
// the poller (an Express app on a PaaS). It
//   1. verifies the Standard Webhooks signature on the RAW request bytes,
//   2. deduplicates on the webhook-id header (delivery is at-least-once),
//   3. answers 200 at once and does its work after,
// and handles every body the poller sends: format json (the event envelope
// or params as a JSON object), form (urlencoded), template (your own body,
// JSON or text) and query (no body at all).
//
// Environment: WEBHOOK_SECRET (whsec_..., several space-separated while
// rotating), PORT (default 8080), HOST (default all interfaces).
// Every line it prints is one JSON object: "listening", "processed",
// "test event" (what `poller send-test` sends), "duplicate", "rejected",
// "cannot parse".
"use strict";

const express = require("express");
const { Webhook } = require("standardwebhooks");

const secrets = (process.env.WEBHOOK_SECRET || "").split(/\s+/).filter(Boolean);
if (secrets.length === 0) {
  console.error("WEBHOOK_SECRET is not set (whsec_...)");
  process.exit(2);
}
const verifiers = secrets.map((s) => new Webhook(s));

function log(msg, fields) {
  console.log(JSON.stringify({ time: new Date().toISOString(), msg, ...fields }));
}

// verified reports whether any configured secret verifies the request.
//
// The signature covers "webhook-id.webhook-timestamp.body" byte for byte,
// so the body must be the raw bytes (express.raw below), never a
// re-serialized req.body. And verify() must be told { jsonParse: false }:
// by default, after the signature matched, it returns JSON.parse(body) and
// so THROWS on every form, plain-text or other non-JSON body, which would
// turn a valid delivery into an error. With jsonParse: false it only
// verifies, and this app parses each Content-Type itself.
function verified(raw, headers) {
  for (const wh of verifiers) {
    try {
      wh.verify(raw, headers, { jsonParse: false });
      return true;
    } catch {
      // wrong secret, bad or missing signature, or a timestamp older or
      // newer than 5 minutes: try the next secret
    }
  }
  return false;
}

// seen holds the webhook-ids already accepted. The poller retries an event
// for up to its retry.max_age (default 72h), so a real app keeps ids at least
// that long, in its database (a unique key) rather than in memory.
const seen = new Map();
const maxSeen = 100000;

function firstSeen(id) {
  if (seen.has(id)) return false;
  seen.set(id, true);
  if (seen.size > maxSeen) seen.delete(seen.keys().next().value); // oldest first
  return true;
}

const app = express();

// Any Content-Type (and none) arrives as a Buffer of the exact bytes sent.
app.use("/webhook", express.raw({ type: () => true, limit: "10mb" }));

app.all("/webhook", (req, res) => {
  const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  if (!verified(raw, req.headers)) {
    log("rejected", { id: req.get("webhook-id") || "", reason: "signature" });
    res.status(401).send("bad signature");
    return;
  }
  const id = req.get("webhook-id");
  if (!firstSeen(id)) {
    log("duplicate", { id });
    res.status(200).send("OK"); // already accepted: say so, or it is retried
    return;
  }
  // Answer first: the poller waits for this answer (timeout 10s by
  // default) before it sends this order's next event. An app that must not
  // lose an event stores it durably (with its id) before answering.
  res.status(200).send("OK");
  const job = { id, contentType: req.get("content-type") || "", raw, query: req.query };
  setImmediate(() => work(job));
});

// work parses the delivery by its Content-Type and does the app's work
// (here: one log line).
function work({ id, contentType, raw, query }) {
  try {
    const type = contentType.split(";")[0].trim().toLowerCase();
    let kind;
    let data;
    let signed = true;
    if (raw.length === 0) {
      // format: query (or a GET form): the parameters are in the URL, and
      // the signature covers only webhook-id and webhook-timestamp (the
      // body is empty). Do not trust these values: look the order up.
      kind = "query";
      data = { ...query };
      signed = false;
    } else if (type === "application/json" || type.endsWith("+json")) {
      kind = "json"; // the event envelope, json params, or a JSON template
      data = JSON.parse(raw.toString("utf8"));
    } else if (type === "application/x-www-form-urlencoded") {
      kind = "form";
      data = Object.fromEntries(new URLSearchParams(raw.toString("utf8")));
    } else {
      kind = "text"; // a text template
      data = raw.toString("utf8");
    }
    if (isTest(data)) {
      // `poller send-test`: answered like any event, no work done.
      log("test event", { id, kind, signed });
      return;
    }
    log("processed", { id, kind, signed, data });
  } catch (err) {
    log("cannot parse", { id, error: String(err) });
  }
}

// isTest reports whether a delivery is the synthetic event `poller
// send-test` sends (type poller.test): the envelope's type, or an
// event_type parameter (params: {event_type: "{{ event.type }}"}).
function isTest(data) {
  return data !== null && typeof data === "object" &&
    (data.type === "poller.test" || data.event_type === "poller.test");
}

const server = app.listen(Number(process.env.PORT || 8080), process.env.HOST || undefined, () => {
  const { address, port } = server.address();
  const host = address.includes(":") ? `[${address}]` : address;
  log("listening", { addr: `http://${host}:${port}` });
});

process.on("SIGTERM", () => server.close(() => process.exit(0)));
