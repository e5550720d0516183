// The load targets as k6 scenarios, the same three as bench/locustfile.py, with thresholds:
// events ingestion (50,000 events/s as 500 batches of 100 a second), the analytics API's
// dashboard mix (5,000 requests/s) and recommendations (1,000 requests/s).
//
//   k6 run -e BASE_URL=https://gm.example -e WRITE_KEY=gm_... -e TOKEN=eyJ... -e GAME_ID=... \
//          -e PLAYERS=knight-0,mage-0 bench/k6/scenarios.js
//
// TOKEN needs analytics:read and recommendations:read. SCALE (default 1) multiplies every rate,
// DURATION (default 1m) bounds every scenario; SCENARIOS=ingest,dashboard picks some of them.
// A 503 (the platform's "not now") counts as failed, so the achieved rate is what was accepted.
import http from 'k6/http';
import { check } from 'k6';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8000';
const SCALE = Number(__ENV.SCALE || '1');
const DURATION = __ENV.DURATION || '1m';
const BATCH = Number(__ENV.BATCH || '100');
const PLAYERS = (__ENV.PLAYERS || 'player-1').split(',');
const CHOSEN = (__ENV.SCENARIOS || 'ingest,dashboard,recommendations').split(',');

function rate(perSecond, exec, vus) {
  const target = Math.max(1, Math.round(perSecond * SCALE));
  return {
    executor: 'constant-arrival-rate', exec, rate: target, timeUnit: '1s', duration: DURATION,
    preAllocatedVUs: Math.max(1, Math.round(vus * SCALE)), maxVUs: Math.max(2, Math.round(vus * 4 * SCALE)),
  };
}

const ALL = {
  ingest: rate(50000 / BATCH, 'ingest', 100),
  dashboard: rate(5000, 'dashboard', 200),
  recommendations: rate(1000, 'recommendations', 50),
};

export const options = {
  scenarios: Object.fromEntries(Object.entries(ALL).filter(([name]) => CHOSEN.includes(name))),
  thresholds: {
    'http_req_failed{scenario:ingest}': ['rate<0.01'],
    'http_req_duration{scenario:ingest}': ['p(95)<500', 'p(99)<1000'],
    'http_req_failed{scenario:dashboard}': ['rate<0.01'],
    'http_req_duration{scenario:dashboard}': ['p(95)<200', 'p(99)<500'],
    'http_req_failed{scenario:recommendations}': ['rate<0.01'],
    'http_req_duration{scenario:recommendations}': ['p(95)<100', 'p(99)<250'],
    // Each scenario reaching 95% of its rate: arrivals k6 could not start count against it.
    dropped_iterations: [`count<${Math.ceil(0.05 * 6500 * SCALE * seconds(DURATION))}`],
  },
};

function seconds(duration) {
  const match = /^(\d+)(s|m|h)$/.exec(duration);
  if (!match) throw new Error(`DURATION ${duration} is not like 30s, 5m or 1h`);
  return Number(match[1]) * { s: 1, m: 60, h: 3600 }[match[2]];
}

export function ingest() {
  const now = new Date().toISOString();
  const events = [];
  for (let i = 0; i < BATCH; i++) {
    events.push({ event_id: crypto.randomUUID(), event_type: 'session_start', player_id: `load-${crypto.randomUUID().slice(0, 6)}`, timestamp: now });
  }
  const response = http.post(`${BASE_URL}/v1/events`, JSON.stringify({ events }), {
    headers: { Authorization: `Bearer ${__ENV.WRITE_KEY}`, 'Content-Type': 'application/json' },
    tags: { name: `POST /v1/events (${BATCH} events)` },
  });
  check(response, { 'ingest accepted': (r) => r.status === 200 });
}

const DAY = 24 * 3600 * 1000;
const SPAN = {
  g: __ENV.GAME_ID,
  from: new Date(Date.now() - 29 * DAY).toISOString().slice(0, 10),
  to: new Date().toISOString().slice(0, 10),
};
const PANELS = [
  ['activeUsers', 'query($g: ID!, $from: Date!, $to: Date!) { activeUsers(gameId: $g, from: $from, to: $to) { date value } }'],
  ['revenue', 'query($g: ID!, $from: Date!, $to: Date!) { revenue(gameId: $g, from: $from, to: $to) { date gross payers arpdau arppu conversion } }'],
  ['retention', 'query($g: ID!, $from: Date!, $to: Date!) { retention(gameId: $g, cohortFrom: $from, cohortTo: $to) { cohortDate size days { day value } } }'],
  ['sessions', 'query($g: ID!, $from: Date!, $to: Date!) { sessions(gameId: $g, from: $from, to: $to) { date sessions averageLengthSeconds } }'],
  ['topEvents', 'query($g: ID!, $from: Date!, $to: Date!) { topEvents(gameId: $g, from: $from, to: $to) { eventType count } }'],
  ['games', '{ games { id name eventsStored } }'],
];

export function dashboard() {
  // One panel per iteration, in turn: the mix of a dashboard refreshing its panels.
  const [name, query] = PANELS[(__ITER + __VU) % PANELS.length];
  const response = http.post(`${BASE_URL}/graphql`, JSON.stringify({ query, variables: name === 'games' ? {} : SPAN }), {
    headers: { Authorization: `Bearer ${__ENV.TOKEN}`, 'Content-Type': 'application/json' },
    tags: { name: `graphql ${name}` },
  });
  check(response, { 'dashboard answered': (r) => r.status === 200 && !(r.json() || {}).errors });
}

export function recommendations() {
  const player = PLAYERS[(__ITER + __VU) % PLAYERS.length];
  const response = http.get(`${BASE_URL}/v1/games/${__ENV.GAME_ID}/players/${encodeURIComponent(player)}/recommendations?n=10`, {
    headers: { Authorization: `Bearer ${__ENV.TOKEN}` },
    tags: { name: 'GET recommendations' },
  });
  check(response, { 'recommendations answered': (r) => r.status === 200 });
}
