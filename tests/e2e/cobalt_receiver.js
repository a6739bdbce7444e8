// A webhook receiver written only from Cobalt's documented Node verifier
// (https://docs.usecobalt.com/docs/webhooks/receiving), to prove a Cobalt client's check passes as is.
//
//   node cobalt_receiver.js <secret-file>
//
// Cobalt's example is an Express route behind `express.json()`; here Node's own http module stands in
// for Express (no packages to install): the body is parsed with JSON.parse as express.json() does, a
// false check answers 401 as the example does, and a check that throws (timingSafeEqual on buffers of
// different lengths, or no header at all) answers 500 as Express does for a throwing route.
// The secret is read from <secret-file> at each request: the key the client holds right now.
// One JSON line per request goes to stdout for the test to read.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const http = require("http");

const secretFile = process.argv[2];

// Cobalt's check: the secret string is the HMAC key, the parsed body re-serialised is the content.
function verifySignature(payload, signature, secretKey) {
  const expectedSignature = crypto
    .createHmac("sha256", secretKey)
    .update(JSON.stringify(payload))
    .digest("hex");
  return crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expectedSignature));
}

function handle(req, raw) {
  const payload = JSON.parse(raw.toString("utf8"));
  const signature = req.headers["cobalt-verification"];
  const secretKey = fs.readFileSync(secretFile, "utf8").trim();
  return verifySignature(payload, signature, secretKey) ? 200 : 401;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const raw = Buffer.concat(chunks);
    let status;
    try {
      status = handle(req, raw);
    } catch (err) {
      status = 500;
    }
    const seen = {
      status,
      headers: {
        "webhook-id": req.headers["webhook-id"],
        "webhook-timestamp": req.headers["webhook-timestamp"],
        "webhook-signature": req.headers["webhook-signature"],
        "webhook-attempt": req.headers["webhook-attempt"],
      },
      body: raw.toString("base64"),
    };
    process.stdout.write(JSON.stringify(seen) + "\n");
    res.writeHead(status, { "content-type": "text/plain" });
    res.end(status === 200 ? "Webhook received" : "Invalid signature");
  });
});

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port }) + "\n");
});
