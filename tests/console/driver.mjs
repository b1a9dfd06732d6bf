// Drives the brook console in headless Chromium (Debian's `chromium`, through playwright-core),
// clicking through every page against a running broker that tests/console.rs started and
// seeded, and checking what each page shows. Takes a screenshot of each page into SHOTS.
//
// usage: node driver.mjs BASE_URL SHOTS_DIR
// Exit code 0 when every check passed; otherwise the failed check is printed and the exit
// code is 1. The broker's seed (tests/console.rs): topic `orders` (3 partitions; JSON values
// with keys and headers in partition 0, a binary value in partition 1), group `billing` with
// commits in `orders`, a responder on `echo` that answers "echo: " + the request.

import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(process.env.PLAYWRIGHT_MODULE || import.meta.url);
const { chromium } = require('playwright-core');

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error('usage: node driver.mjs BASE_URL SHOTS_DIR');
  process.exit(2);
}

function check(condition, what) {
  if (!condition) throw new Error('check failed: ' + what);
  console.log('ok - ' + what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const problems = [];
page.on('pageerror', (error) => problems.push('page error: ' + error.message));
page.on('console', (message) => { if (message.type() === 'error') problems.push('console error: ' + message.text()); });
page.setDefaultTimeout(15000);

const shot = (name) => page.screenshot({ path: path.join(shots, name + '.png'), fullPage: true });
const text = (selector) => page.locator(selector).first().innerText();

try {
  // Topics: the list with partitions and records; rates and the chart fill as the page samples
  // while records arrive.
  await page.goto(base + '/#/topics');
  await page.waitForSelector('[data-testid="topic-row"][data-topic="orders"]');
  const row = page.locator('[data-testid="topic-row"][data-topic="orders"]');
  check((await row.locator('td').nth(1).innerText()) === '3', 'orders has 3 partitions');
  check(Number((await row.locator('[data-testid="topic-records"]').innerText()).replace(/,/g, '')) >= 4, 'orders shows its records');
  check((await text('[data-testid="health"]')) === 'ready', 'the health pill says ready');
  for (let i = 0; i < 6; i++) {
    await page.evaluate(async (n) => {
      await fetch('/v1/topics/orders/records', {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ value_encoding: 'text', records: Array.from({ length: 25 }, (_, k) => ({ value: 'load-' + n + '-' + k, partition: 2 })) }),
      });
    }, i);
    await page.waitForTimeout(1000);
  }
  await page.goto(base + '/#/groups');
  await page.goto(base + '/#/topics');
  // The page re-renders every few seconds; wait for a render whose chart has a rise in it.
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="throughput-chart"] polyline')]
    .some((line) => Number(line.dataset.points) >= 2
      && line.getAttribute('points').split(' ').some((p) => Number(p.split(',')[1]) < 130)));
  check(true, 'the throughput chart has points and rises above zero while records arrive');
  await shot('topics');

  // Create a topic from the form; the page goes to it.
  await page.fill('[data-testid="create-name"]', 'from-console');
  await page.fill('[data-testid="create-partitions"]', '2');
  await page.click('[data-testid="create-topic"]');
  await page.waitForSelector('[data-testid="topic-name"]:has-text("from-console")');
  check((await page.locator('[data-testid="partition-row"]').count()) === 2, 'a created topic opens with its 2 partitions');

  // A topic: partitions, records paged, rendered as text, pretty JSON and hex.
  await page.goto(base + '/#/topics/orders');
  await page.waitForSelector('[data-testid="partition-row"]');
  check((await page.locator('[data-testid="partition-row"]').count()) === 3, 'orders lists 3 partitions');
  await page.click('[data-testid="oldest"]');
  await page.waitForSelector('[data-testid="record"][data-offset="0"]');
  const first = page.locator('[data-testid="record"][data-offset="0"]');
  check((await first.locator('[data-testid="record-key"]').innerText()) === 'order-0', 'the first record shows its key');
  check((await first.locator('[data-testid="record-value"]').innerText()).includes('"amount":10'), 'text mode shows the value as stored');
  check((await first.locator('[data-testid="record-headers"]').innerText()).includes('source: shop'), 'headers are shown');
  await page.selectOption('[data-testid="render-mode"]', 'json');
  await page.waitForFunction(() => document.querySelector('[data-testid="record"][data-offset="0"] [data-testid="record-value"]').innerText.includes('\n  "amount": 10'));
  check(true, 'JSON mode pretty-prints the value');
  await page.selectOption('[data-testid="partition"]', '1');
  await page.click('[data-testid="oldest"]');
  await page.selectOption('[data-testid="render-mode"]', 'hex');
  await page.waitForSelector('[data-testid="record"][data-offset="0"]');
  check((await text('[data-testid="record"] [data-testid="record-value"]')).includes('ff fe 00 01'), 'hex mode shows the binary value');
  await page.selectOption('[data-testid="partition"]', '0');
  await page.selectOption('[data-testid="render-mode"]', 'json');
  await page.click('[data-testid="oldest"]');
  await page.waitForSelector('[data-testid="record"][data-offset="0"]');
  await page.click('[data-testid="next"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="records-status"]').innerText.includes('offsets 20'));
  check(true, 'Next pages to the following records');
  await page.click('[data-testid="oldest"]');
  await page.waitForSelector('[data-testid="record"][data-offset="0"]');
  await shot('topic');

  // Live tail over the SSE stream: a record produced from the form shows up at the top.
  await page.click('[data-testid="tail"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="records-status"]').innerText.includes('following'));
  await page.waitForTimeout(300);
  await page.fill('[data-testid="produce-key"]', 'live-key');
  await page.fill('[data-testid="produce-value"]', '{"live": true}');
  await page.fill('[data-testid="produce-headers"]', 'via=console');
  await page.fill('[data-testid="produce-partition"]', '0');
  await page.click('[data-testid="produce"]');
  await page.waitForSelector('[data-testid="produce-result"] .notice');
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="record-key"]')].some((el) => el.innerText === 'live-key'));
  const live = page.locator('[data-testid="record"]').first();
  check((await live.locator('[data-testid="record-headers"]').innerText()).includes('via: console'), 'the live tail shows the produced record with its header');
  await shot('topic-live-tail');
  await page.click('[data-testid="tail"]');

  // Groups: lag per group, then a group's members, offsets, and a reset.
  await page.goto(base + '/#/groups');
  await page.waitForSelector('[data-testid="group-row"][data-group="billing"]');
  const lag = Number(await page.locator('[data-testid="group-row"][data-group="billing"] [data-testid="group-lag"]').innerText());
  check(lag > 0, `billing has lag ${lag}`);
  await page.waitForSelector('[data-testid="lag-chart"] polyline', { state: 'attached' });
  await shot('groups');
  await page.click('a[href="#/groups/billing"]');
  await page.waitForSelector('[data-testid="offset-row"]');
  check((await page.locator('[data-testid="offset-row"]').count()) >= 2, 'billing shows its partitions');
  check((await text('[data-testid="offsets"]')).includes('orders'), 'offsets name the topic');
  await page.selectOption('[data-testid="reset-to"]', 'earliest');
  await page.click('[data-testid="reset-preview"]');
  await page.waitForSelector('[data-testid="reset-plan"]');
  check((await text('[data-testid="reset-result"]')).includes('Would move'), 'a preview moves nothing');
  await page.click('[data-testid="reset-apply"]');
  await page.waitForFunction(() => (document.querySelector('[data-testid="reset-result"]') || {}).innerText?.includes('Moved')
    || [...document.querySelectorAll('[data-testid="committed"]')].every((el) => el.innerText === '0'));
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="committed"]')].length > 0
    && [...document.querySelectorAll('[data-testid="committed"]')].every((el) => el.innerText === '0'));
  check(true, 'the reset moved every committed offset to the log start');
  await shot('group');

  // Request-reply: call a topic and see the reply.
  await page.goto(base + '/#/call');
  await page.fill('[data-testid="call-topic"]', 'echo');
  await page.fill('[data-testid="call-value"]', 'ping');
  await page.click('[data-testid="call"]');
  await page.waitForSelector('[data-testid="call-status"]');
  check((await text('[data-testid="call-status"]')).startsWith('200'), 'the call was answered');
  check((await text('[data-testid="call-reply"]')) === 'echo: ping', 'the reply is shown');
  await shot('call');

  // Broker: health, traffic by door, settings.
  await page.goto(base + '/#/broker');
  await page.waitForSelector('[data-testid="broker-settings"]');
  check((await text('[data-testid="broker-health"]')).includes('ready'), 'the broker is ready');
  check((await text('[data-testid="broker-settings"]')).includes('data_dir'), 'settings show the data directory');
  const http = page.locator('[data-testid="door-row"]', { hasText: 'http' });
  check(Number((await http.locator('td').nth(1).innerText()).replace(/,/g, '')) > 0, 'the HTTP door counted requests');
  await shot('broker');

  check(problems.length === 0, 'no script errors: ' + problems.join('; '));
} catch (error) {
  console.error(error.message);
  if (problems.length) console.error(problems.join('\n'));
  await shot('failure').catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log('console: every check passed');
