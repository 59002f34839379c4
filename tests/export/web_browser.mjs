// Drives Debian's chromium for tests/export/test_export_web.py through puppeteer-core: one
// browser for the whole test module, commands as JSON lines on stdin, one JSON line answers each.
//   {"op": "open", "tab": "t", "url": "...", "noWasm": false}
//       -> {"ok": true, "ready": {...}, "elsewhere": [URLs requested from other origins]}
//   {"op": "call", "tab": "t", "name": "runPixels", "args": [...]} -> {"ok": true, "value": ...}
//   {"op": "click", "tab": "t", "selector": "...", "waitFor": "..."} -> {"ok": true}
//   {"op": "wait", "tab": "t", "selector": "..."}               -> {"ok": true}
//   {"op": "text", "tab": "t", "selector": "..."}                -> {"ok": true, "value": "..."}
//   {"op": "screenshot", "tab": "t", "selector": "...", "path": "..."} -> {"ok": true}
//   {"op": "upload", "tab": "t", "path": "..."}                 -> {"ok": true} (the file input)
import readline from 'node:readline';
import puppeteer from 'puppeteer-core';

const executablePath = process.env.RARL_CHROMIUM || '/usr/lib/chromium/chromium';
const args = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--headless=new'];
// Root cannot use chromium's sandbox (the test machines run as root); a user keeps it.
if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
const browser = await puppeteer.launch({ executablePath, args, headless: true, protocolTimeout: 300000 });
const tabs = new Map();
const logs = [];

async function open({ tab, url, noWasm }) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1000, height: 900, deviceScaleFactor: 1 });
  page.on('console', (m) => logs.push(`${tab}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`${tab}: page error ${e.message}`));
  if (noWasm) await page.evaluateOnNewDocument(() => { delete globalThis.WebAssembly; });
  // Every request the page makes to anywhere but its own server (it must work offline).
  const elsewhere = [];
  const origin = new URL(url).origin;
  page.on('request', (r) => {
    if (!/^(data|blob):/.test(r.url()) && new URL(r.url()).origin !== origin) elsewhere.push(r.url());
  });
  await page.goto(url, { waitUntil: 'load' });
  tabs.set(tab, page);
  return { ready: await page.evaluate(() => window.rarl.ready), elsewhere };
}

const ops = {
  open,
  call: async ({ tab, name, args: callArgs }) => ({
    value: await tabs.get(tab).evaluate((n, a) => window.rarl[n](...a), name, callArgs || []),
  }),
  click: async ({ tab, selector, waitFor }) => {
    const page = tabs.get(tab);
    await page.bringToFront();  // a background tab gets no frames: a click there never lands
    await page.click(selector);
    if (waitFor) await page.waitForSelector(waitFor, { timeout: 120000 });
    return {};
  },
  wait: async ({ tab, selector }) => {
    await tabs.get(tab).waitForSelector(selector, { timeout: 60000 });
    return {};
  },
  text: async ({ tab, selector }) => ({
    value: await tabs.get(tab).$eval(selector, (e) => (e.hidden ? '' : e.textContent)),
  }),
  screenshot: async ({ tab, selector, path }) => {
    await tabs.get(tab).bringToFront();
    await (await tabs.get(tab).$(selector)).screenshot({ path });
    return {};
  },
  upload: async ({ tab, path }) => {
    await tabs.get(tab).bringToFront();
    await (await tabs.get(tab).$('#file')).uploadFile(path);
    return {};
  },
};

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const command = JSON.parse(line);
  let answer;
  try {
    answer = { ok: true, ...(await ops[command.op](command)) };
  } catch (err) {
    answer = { ok: false, error: String(err && err.stack ? err.stack : err), logs: logs.slice(-20) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
await browser.close();
