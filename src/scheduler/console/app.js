// The Shardex web console: pages over the scheduler's REST API, routed by the URL's hash
// (#/, #/jobs/NAME, #/jobs/NAME/runs/ID, #/tasks/TASK/files/NAME). Every page reloads its data
// every 2 s while the tab is visible (polling; paused while hidden) and is rebuilt only when
// the data changed, keeping the focused control focused. Nothing here builds HTML from
// strings: every node is made with createElement and text with textContent, so no data from
// the API can become markup.

const POLL_MS = 2000;
const TOKEN_KEY = 'shardex.rest-token';
// Mesos reads at most 16 pages per /files/read; ask for that much at a time.
const READ_BYTES = 65536;
// The most of a log kept on the page.
const LOG_KEEP_BYTES = 1 << 20;
const RUNS_PER_PAGE = 20;

// ---------------------------------------------------------------------------------------------
// DOM

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const pad = (n, width = 2) => String(n).padStart(width, '0');

/// A time as local `YYYY-MM-DD HH:MM:SS` (with milliseconds if asked), in a <time> element
/// carrying the exact RFC 3339 value.
function when(iso, millis = false) {
  if (!iso) return h('span', { class: 'none' }, '—');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  let text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (millis) text += `.${pad(d.getMilliseconds(), 3)}`;
  return h('time', { datetime: iso, title: iso }, text);
}

function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

// Every state shows a symbol and a word: nothing is told by colour alone.
const LOOKS = {
  succeeded: ['✓', 'ok'], failed: ['✗', 'bad'], killed: ['■', 'warn'], lost: ['⚠', 'bad'],
  running: ['▶', 'run'], pending: ['◷', 'idle'], cancelled: ['⊘', 'warn'],
  enabled: ['●', 'ok'], disabled: ['○', 'warn'],
  TASK_FINISHED: ['✓', 'ok'], TASK_FAILED: ['✗', 'bad'], TASK_ERROR: ['✗', 'bad'],
  TASK_KILLED: ['■', 'warn'], TASK_KILLING: ['■', 'warn'], TASK_LOST: ['⚠', 'bad'],
  TASK_GONE: ['⚠', 'bad'], TASK_GONE_BY_OPERATOR: ['⚠', 'bad'], TASK_DROPPED: ['⚠', 'bad'],
  TASK_UNREACHABLE: ['⚠', 'bad'], TASK_UNKNOWN: ['?', 'bad'],
  TASK_RUNNING: ['▶', 'run'], TASK_STARTING: ['◷', 'idle'], TASK_STAGING: ['◷', 'idle'],
  READY: ['→', 'idle'], FAILOVER: ['↻', 'warn'],
};

function badge(word, extra = {}) {
  const [symbol, look] = LOOKS[word] || ['•', 'idle'];
  return h('span', { class: `badge b-${look}`, ...extra },
    h('span', { 'aria-hidden': 'true' }, symbol), ' ', word);
}

/// A table whose cells carry their column's name (shown before each value on narrow screens).
function table(id, labelledBy, columns, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', { id, 'aria-labelledby': labelledBy },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map(({ attrs, cells }) =>
        h('tr', attrs, cells.map((cell, i) => h('td', { 'data-label': columns[i] }, cell)))))));
}

function section(id, title, ...content) {
  return h('section', { 'aria-labelledby': id }, h('h2', { id }, title), ...content);
}

function empty(id, text) {
  return h('p', { class: 'empty', id }, text);
}

// ---------------------------------------------------------------------------------------------
// The REST API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

/// `method path` with the token, as JSON; statuses in `allow` are answers too.
async function api(method, path, allow = []) {
  const headers = { Accept: 'application/json' };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  let response;
  try {
    response = await fetch(path, { method, headers, cache: 'no-store' });
  } catch (error) {
    throw new ApiError(0, `cannot reach the scheduler (${error.message}): is it running?`);
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (response.ok || allow.includes(response.status)) return { status: response.status, body };
  const message = (body && body.error) || text || response.statusText;
  if (response.status === 401 || response.status === 403) askForToken(message);
  throw new ApiError(response.status, message);
}

/// A GET that answers `fallback` on 404.
async function getOr404(path, fallback) {
  const { status, body } = await api('GET', path, [404]);
  return status === 404 ? fallback : body;
}

// ---------------------------------------------------------------------------------------------
// Dialogs, announcements

/// Asks before doing something; resolves to whether the user confirmed.
function confirmAction(title, text, okLabel) {
  const dialog = $('confirm-dialog');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

let tokenAsked = false;

function askForToken(why) {
  if (tokenAsked || $('token-dialog').open) return;
  tokenAsked = true;
  $('token-why').textContent = `The scheduler answered: ${why}. Give its REST token (the ` +
    'contents of its rest.token_file); it is kept in this tab only.';
  openTokenDialog();
}

function openTokenDialog() {
  const dialog = $('token-dialog');
  $('token-input').value = token();
  dialog.returnValue = '';
  dialog.showModal();
}

function setUpTokenDialog() {
  $('token-button').addEventListener('click', openTokenDialog);
  $('token-dialog').addEventListener('close', () => {
    const choice = $('token-dialog').returnValue;
    if (choice === 'save') {
      sessionStorage.setItem(TOKEN_KEY, $('token-input').value.trim());
      announce('REST token set for this tab.');
    } else if (choice === 'forget') {
      sessionStorage.removeItem(TOKEN_KEY);
      announce('REST token forgotten.');
    }
    $('token-input').value = '';
    if (choice === 'save' || choice === 'forget') {
      tokenAsked = false;
    } else if (tokenAsked) {
      announce('The REST API needs a token: give it with the REST token button.', true);
    }
    lastShown = null;
    refresh();
  });
}

function announce(text, error = false) {
  const status = $('status');
  status.textContent = error ? `✗ ${text}` : text;
  status.classList.toggle('error', error);
}

/// Runs an action after the user confirmed it, says how it went and reloads the page.
async function act({ title, text, ok, method, path, done }) {
  if (!(await confirmAction(title, text, ok))) {
    announce(`${title}: cancelled.`);
    return;
  }
  try {
    const { body } = await api(method, path);
    announce(done(body));
  } catch (error) {
    announce(`${title} failed: ${error.message}`, true);
  }
  await refresh();
}

// ---------------------------------------------------------------------------------------------
// Routes

function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = hash.split('?');
  const params = new URLSearchParams(query);
  let parts;
  try {
    parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = [];
  }
  if (parts[0] === 'jobs' && parts[1]) {
    return {
      page: 'job', job: parts[1], run: parts[2] === 'runs' ? parts[3] || null : null,
      before: params.get('before'),
    };
  }
  if (parts[0] === 'tasks' && parts[1] && parts[2] === 'files' && parts[3]) {
    return { page: 'log', task: parts[1], file: parts[3] };
  }
  return { page: 'overview' };
}

const href = {
  overview: () => '#/',
  job: (job, before) => `#/jobs/${enc(job)}${before ? `?before=${enc(before)}` : ''}`,
  run: (job, run) => `#/jobs/${enc(job)}/runs/${enc(run)}`,
  file: (task, name) => `#/tasks/${enc(task)}/files/${enc(name)}`,
};

function crumbs(...links) {
  return h('nav', { 'aria-label': 'Breadcrumb', class: 'crumbs' },
    h('ol', {}, links.map(([text, target], i) => h('li', {},
      i === links.length - 1 ? h('span', { 'aria-current': 'page' }, text) : h('a', { href: target }, text)))));
}

// ---------------------------------------------------------------------------------------------
// Overview: apps, jobs, queues

async function loadOverview() {
  const [jobs, apps, running, ready, failover, parked] = await Promise.all(
    ['/api/jobs', '/api/apps', '/api/tasks/running', '/api/tasks/ready', '/api/tasks/failover',
      '/api/tasks/parked'].map((path) => api('GET', path).then((r) => r.body)));
  return { jobs, apps, running, ready, failover, parked };
}

function jobType(job) {
  return `${job.execution_type || 'transient'} · ${job.kind || 'simple'}`;
}

function lastRun(job) {
  const last = job.last_run;
  if (!last) return h('span', { class: 'none' }, 'never');
  return h('span', {},
    h('a', { href: href.run(job.name, last.id), id: `last-run-${job.name}` }, `#${last.id}`), ' ',
    badge(last.outcome), ' ', when(last.ended_at || last.fired_at));
}

function jobsTable(jobs) {
  if (!jobs.length) return empty('jobs-empty', 'No jobs registered.');
  return table('jobs-table', 'jobs-heading',
    ['Job', 'App', 'Type', 'State', 'Cron', 'Shards', 'Next fire', 'Last run', 'Pending runs'],
    jobs.map((job) => ({
      attrs: { 'data-job': job.name },
      cells: [
        h('a', { href: href.job(job.name), id: `job-link-${job.name}` }, job.name),
        job.app, jobType(job), badge(job.enabled ? 'enabled' : 'disabled'),
        job.cron ? h('code', {}, job.cron) : h('span', { class: 'none' }, 'manual'),
        String(job.sharding_total_count), when(job.next_fire), lastRun(job),
        String(job.ready_runs ?? 0),
      ],
    })));
}

function appsTable(apps, jobs) {
  if (!apps.length) return empty('apps-empty', 'No apps registered.');
  return table('apps-table', 'apps-heading', ['App', 'State', 'Revision', 'Jobs', 'Source'],
    apps.map((app) => ({
      attrs: { 'data-app': app.name },
      cells: [
        app.name, badge(app.disabled ? 'disabled' : 'enabled'), String(app.revision ?? ''),
        jobs.filter((j) => j.app === app.name).map((j) => j.name).join(', ') || '—',
        app.source || '',
      ],
    })));
}

function taskId(task) {
  return h('code', { class: 'id' }, task);
}

function runningTable(running, withJob = true) {
  if (!running.length) return empty('running-empty', 'No tasks running.');
  const columns = [...(withJob ? ['Job'] : []), 'Shard', 'Type', 'State', 'Attempt', 'Launched', 'Task'];
  return table('running-table', 'running-heading', columns, running.map((t) => ({
    attrs: { 'data-task': t.task_id },
    cells: [
      ...(withJob ? [h('a', { href: href.job(t.job) }, t.job)] : []),
      String(t.item), badge(t.kind), badge(t.state || 'TASK_STAGING'), String(t.attempt ?? 0),
      when(t.launched_at), taskId(t.task_id),
    ],
  })));
}

function readyTable(ready) {
  if (!ready.length) return empty('ready-empty', 'No runs waiting for offers.');
  return table('ready-table', 'ready-heading', ['Job', 'Pending runs'],
    ready.map((r) => ({ attrs: { 'data-job': r.job }, cells: [h('a', { href: href.job(r.job) }, r.job), String(r.runs)] })));
}

function failoverTable(failover, withJob = true) {
  if (!failover.length) return empty('failover-empty', 'No shards waiting to fail over.');
  const columns = [...(withJob ? ['Job'] : []), 'Shard', 'Attempts', 'Not before', 'Cause', 'Task that crashed'];
  return table('failover-table', 'failover-heading', columns, failover.map((f) => ({
    attrs: { 'data-job': f.job, 'data-item': f.item },
    cells: [
      ...(withJob ? [h('a', { href: href.job(f.job) }, f.job)] : []), String(f.item),
      String(f.attempts ?? ''), when(f.not_before), f.cause || '', taskId(f.original_task_id || ''),
    ],
  })));
}

function releaseButton(p) {
  return h('button', {
    type: 'button', id: `release-${p.job}-${p.item}`,
    onclick: () => act({
      title: `Release shard ${p.item} of ${p.job}`,
      text: `Shard ${p.item} of job ${p.job} is parked after ${p.attempts} crashes. Release it ` +
        'so that the job\'s next run includes it again?',
      ok: 'Release',
      method: 'POST',
      path: `/api/tasks/parked/${enc(p.job)}/${enc(p.item)}/release`,
      done: () => `Released shard ${p.item} of ${p.job}: the job's next run includes it.`,
    }),
  }, 'Release…');
}

function parkedTable(parked, withJob = true) {
  if (!parked.length) return empty('parked-empty', 'No parked shards.');
  const columns = [...(withJob ? ['Job'] : []), 'Shard', 'Attempts', 'Cause', 'Parked at', 'Action'];
  return table('parked-table', 'parked-heading', columns, parked.map((p) => ({
    attrs: { 'data-job': p.job, 'data-item': p.item },
    cells: [
      ...(withJob ? [h('a', { href: href.job(p.job) }, p.job)] : []), String(p.item),
      String(p.attempts ?? ''), p.cause || '', when(p.parked_at), releaseButton(p),
    ],
  })));
}

function queues(data, withJob = true) {
  return [
    h('h3', { id: 'running-heading' }, 'Running'), runningTable(data.running, withJob),
    h('h3', { id: 'ready-heading' }, 'Ready'), readyTable(data.ready),
    h('h3', { id: 'failover-heading' }, 'Failover'), failoverTable(data.failover, withJob),
    h('h3', { id: 'parked-heading' }, 'Parked'), parkedTable(data.parked, withJob),
  ];
}

function renderOverview(data) {
  return [
    h('h1', { id: 'page-title', tabindex: '-1' }, 'Overview'),
    section('jobs-heading', 'Jobs', jobsTable(data.jobs)),
    section('queues-heading', 'Queues', ...queues(data)),
    section('apps-heading', 'Apps', appsTable(data.apps, data.jobs)),
  ];
}

// ---------------------------------------------------------------------------------------------
// Job page: details, actions, what runs now, run history, one run's timeline per shard

async function loadJob(r) {
  const path = `/api/jobs/${enc(r.job)}`;
  const runsPath = `${path}/runs?limit=${RUNS_PER_PAGE}${r.before ? `&before=${enc(r.before)}` : ''}`;
  const [job, runs, run, running, failover, parked] = await Promise.all([
    api('GET', path).then((x) => x.body),
    getOr404(runsPath, { job: r.job, runs: [], next_before: null }).catch((e) => ({ error: e.message })),
    r.run ? getOr404(`/api/runs/${enc(r.run)}`, null).catch((e) => ({ error: e.message })) : null,
    api('GET', '/api/tasks/running').then((x) => x.body.filter((t) => t.job === r.job)),
    api('GET', '/api/tasks/failover').then((x) => x.body.filter((t) => t.job === r.job)),
    api('GET', '/api/tasks/parked').then((x) => x.body.filter((t) => t.job === r.job)),
  ]);
  return { job, runs, run, running, failover, parked };
}

function details(pairs) {
  return h('dl', { class: 'details' }, pairs.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
}

function jobActions(job) {
  const daemon = job.execution_type === 'daemon';
  const trigger = h('button', {
    type: 'button', id: 'action-trigger', class: 'primary',
    disabled: daemon || !job.enabled,
    'aria-describedby': daemon || !job.enabled ? 'trigger-why' : null,
    onclick: () => act({
      title: `Trigger ${job.name}`,
      text: `Run job ${job.name} now: one more pending run, launched with the next offers ` +
        `(${job.sharding_total_count} shards).`,
      ok: 'Trigger',
      method: 'POST',
      path: `/api/jobs/${enc(job.name)}/trigger`,
      done: (body) => `Triggered ${job.name}: ${body.ready_runs} pending run(s).`,
    }),
  }, 'Trigger…');
  const toggle = job.enabled
    ? h('button', {
      type: 'button', id: 'action-disable',
      onclick: () => act({
        title: `Disable ${job.name}`,
        text: `Disable job ${job.name}: its running tasks are killed, its pending runs, ` +
          'failover entries and parked shards dropped, and its cron stops until it is enabled.',
        ok: 'Disable',
        method: 'POST',
        path: `/api/jobs/${enc(job.name)}/disable`,
        done: () => `Disabled ${job.name}.`,
      }),
    }, 'Disable…')
    : h('button', {
      type: 'button', id: 'action-enable',
      onclick: () => act({
        title: `Enable ${job.name}`,
        text: `Enable job ${job.name}: its cron fires again from now on (missed fires are ` +
          'not run); a daemon job is started.',
        ok: 'Enable',
        method: 'POST',
        path: `/api/jobs/${enc(job.name)}/enable`,
        done: () => `Enabled ${job.name}.`,
      }),
    }, 'Enable…');
  const why = daemon
    ? 'A daemon job fires on its own cron inside the executor: it cannot be triggered.'
    : !job.enabled ? 'A disabled job cannot be triggered: enable it first.' : null;
  return h('div', { class: 'actions' }, trigger, toggle,
    why ? h('p', { id: 'trigger-why', class: 'hint' }, why) : null);
}

function itemsSummary(run) {
  const counts = {};
  for (const item of run.items || []) counts[item.outcome] = (counts[item.outcome] || 0) + 1;
  return Object.entries(counts).map(([outcome, n]) => `${n} ${outcome}`).join(', ') || '—';
}

function runsTable(job, runs, selected) {
  if (runs.error) return h('p', { class: 'error', id: 'runs-error' }, `Cannot read the run history: ${runs.error}`);
  if (!runs.runs.length) return empty('runs-empty', 'No runs recorded yet.');
  const rows = runs.runs.map((run) => {
    const current = String(run.id) === String(selected);
    return {
      attrs: { 'data-run': run.id, class: current ? 'selected' : null },
      cells: [
        h('a', { href: href.run(job, run.id), id: `run-link-${run.id}`, 'aria-current': current ? 'true' : null }, `#${run.id}`),
        run.trigger, when(run.fired_at), when(run.ended_at),
        run.ended_at && run.fired_at ? duration(Date.parse(run.ended_at) - Date.parse(run.fired_at)) : '—',
        badge(run.outcome), itemsSummary(run),
      ],
    };
  });
  const paging = h('nav', { 'aria-label': 'Run history pages', class: 'paging' },
    route().before ? h('a', { href: href.job(job), id: 'runs-newest' }, '← Newest runs') : null,
    runs.next_before !== null && runs.next_before !== undefined
      ? h('a', { href: href.job(job, runs.next_before), id: 'runs-older' }, 'Older runs →') : null);
  return [table('runs-table', 'history-heading',
    ['Run', 'Trigger', 'Fired', 'Ended', 'Took', 'Outcome', 'Shards'], rows), paging];
}

function stateLine(s) {
  const notes = [s.source, s.reason, s.message].filter(Boolean);
  return h('li', { class: 'event', 'data-state': s.state },
    when(s.at, true), ' ', badge(s.state),
    notes.length ? h('span', { class: 'note' }, ' — ', notes.join(' · ')) : null);
}

function taskFiles(task) {
  const files = (task.sandbox && task.sandbox.files) || [];
  if (!files.length) return h('p', { class: 'hint' }, 'No sandbox files known (the agent never said where the sandbox is).');
  return h('p', { class: 'files' }, 'Output: ',
    files.map((f, i) => [i ? ', ' : '', h('a', {
      href: href.file(task.task_id, f.name), 'data-file': f.name, title: f.path || f.name,
    }, f.name)]));
}

function taskEntry(task, index, previous) {
  const failedOver = task.kind === 'FAILOVER';
  return h('li', { class: 'task', 'data-task-id': task.task_id, 'data-kind': task.kind },
    h('h4', {},
      `Task ${index + 1}: `, badge(task.kind, { 'data-task-kind': task.kind }),
      ` attempt ${task.attempt ?? 0}`,
      task.duration_ms !== null && task.duration_ms !== undefined ? ` · ${duration(task.duration_ms)}` : ''),
    failedOver && previous
      ? h('p', { class: 'hint' }, `↻ Failed over from task ${previous.task_id} after ${previous.state}.`)
      : null,
    details([
      ['Task id', h('code', { class: 'id' }, task.task_id)],
      ['Agent', h('code', { class: 'id' }, task.agent_id || '—')],
      ['Executor', h('code', { class: 'id' }, task.executor_id || '—')],
    ]),
    h('ol', { class: 'events', 'aria-label': `States of task ${index + 1}` },
      h('li', { class: 'event', 'data-state': 'LAUNCHED' }, when(task.launched_at, true), ' ',
        h('span', { class: 'badge b-idle' }, h('span', { 'aria-hidden': 'true' }, '⇢'), ' launched')),
      (task.states || []).map(stateLine)),
    taskFiles(task));
}

function runTimeline(run) {
  if (!run) return h('p', { class: 'error', id: 'run-missing' }, 'No such run: it may be older than the history keeps.');
  if (run.error) return h('p', { class: 'error', id: 'run-error' }, `Cannot read the run: ${run.error}`);
  return [
    details([
      ['Outcome', badge(run.outcome)], ['Trigger', run.trigger], ['Fired', when(run.fired_at, true)],
      ['Launched', when(run.launched_at, true)], ['Ended', when(run.ended_at, true)],
    ]),
    (run.items || []).map((item) => h('section', {
      class: 'shard', 'data-item': item.item, 'aria-labelledby': `shard-${item.item}-heading`,
    },
    h('h3', { id: `shard-${item.item}-heading` }, `Shard ${item.item} `, badge(item.outcome)),
    h('ol', { class: 'tasks' }, (item.tasks || []).map((task, i, all) => taskEntry(task, i, all[i - 1]))))),
  ];
}

function renderJob(data, r) {
  const { job } = data;
  const content = [
    crumbs(['Overview', href.overview()], [job.name, href.job(job.name)]),
    h('h1', { id: 'page-title', tabindex: '-1' }, `Job ${job.name}`),
    details([
      ['State', badge(job.enabled ? 'enabled' : 'disabled', { id: 'job-state' })],
      ['App', job.app], ['Type', jobType(job)],
      ['Cron', job.cron ? h('code', {}, job.cron) : 'manual (runs when triggered)'],
      ['Shards', String(job.sharding_total_count)], ['Next fire', when(job.next_fire)],
      ['Failover', job.failover ? 'on' : 'off'], ['Pending runs', String(job.ready_runs ?? 0)],
      ['Source', job.source || ''],
    ]),
    jobActions(job),
    section('history-heading', 'Run history', runsTable(job.name, data.runs, r.run)),
  ];
  if (r.run) content.push(section('run-heading', `Run #${r.run}`, runTimeline(data.run)));
  content.push(section('now-heading', 'Now',
    h('h3', { id: 'running-heading' }, 'Running'), runningTable(data.running, false),
    h('h3', { id: 'failover-heading' }, 'Failover'), failoverTable(data.failover, false),
    h('h3', { id: 'parked-heading' }, 'Parked'), parkedTable(data.parked, false)));
  return content;
}

// ---------------------------------------------------------------------------------------------
// Log page: the tail of one sandbox file, followed

let log = null;

const bytesOf = (text) => new TextEncoder().encode(text).length;

async function loadLog(r) {
  if (!log || log.task !== r.task || log.file !== r.file) {
    log = { task: r.task, file: r.file, offset: null, text: '', start: 0, follow: true };
  }
  const info = await api('GET', `/api/tasks/${enc(r.task)}`).then((x) => x.body);
  const base = `/api/tasks/${enc(r.task)}/files/${enc(r.file)}`;
  let error = null;
  try {
    if (log.offset === null) {
      const size = (await api('GET', base)).body.offset;
      log.offset = Math.max(0, size - READ_BYTES);
      log.start = log.offset;
    }
    if (log.follow || !log.text) {
      for (let reads = 0; reads < 16; reads += 1) {
        const chunk = (await api('GET', `${base}?offset=${log.offset}&length=${READ_BYTES}`)).body;
        if (!chunk.data) break;
        log.text += chunk.data;
        log.offset = chunk.offset + bytesOf(chunk.data);
        if (log.text.length > LOG_KEEP_BYTES) {
          const cut = log.text.length - LOG_KEEP_BYTES;
          log.start += bytesOf(log.text.slice(0, cut));
          log.text = log.text.slice(cut);
        }
      }
    }
  } catch (e) {
    error = e.message;
  }
  return { info, text: log.text, start: log.start, end: log.offset, follow: log.follow, error };
}

function renderLog(data, r) {
  const { info } = data;
  const task = info.task || {};
  const job = info.job;
  const trail = [['Overview', href.overview()], [job, href.job(job)]];
  if (info.run !== null && info.run !== undefined) trail.push([`Run #${info.run}`, href.run(job, info.run)]);
  trail.push([`${r.file} of shard ${info.item}`, href.file(r.task, r.file)]);
  const others = ((task.sandbox && task.sandbox.files) || []).filter((f) => f.name !== r.file);
  const follow = h('input', {
    type: 'checkbox', id: 'log-follow', checked: data.follow,
    onchange: (event) => {
      log.follow = event.target.checked;
      announce(log.follow ? 'Following the file.' : 'Stopped following the file.');
    },
  });
  const download = ((task.sandbox && task.sandbox.files) || []).find((f) => f.name === r.file);
  return [
    crumbs(...trail),
    h('h1', { id: 'page-title', tabindex: '-1' }, `${r.file} of ${job} shard ${info.item}`),
    details([
      ['Task', h('code', { class: 'id' }, r.task)],
      ['Type', badge(task.kind || 'READY')], ['State', badge(task.state || 'TASK_STAGING')],
      ['Bytes', `${data.start}–${data.end ?? 0}`],
    ]),
    h('div', { class: 'actions' },
      h('label', { class: 'check' }, follow, ' Follow (read new output every 2 s)'),
      others.map((f) => h('a', { href: href.file(r.task, f.name), 'data-file': f.name }, `Open ${f.name}`)),
      download && download.download
        ? h('a', { href: download.download, rel: 'noreferrer', id: 'log-download' }, 'Download from the agent') : null),
    data.error ? h('p', { class: 'error', id: 'log-error' }, `Cannot read ${r.file}: ${data.error}`) : null,
    h('pre', { id: 'log-text', tabindex: '0', 'aria-label': `${r.file} of task ${r.task}` },
      data.text || (data.error ? '' : '(empty so far)')),
  ];
}

// ---------------------------------------------------------------------------------------------
// The loop

const PAGES = {
  overview: { load: loadOverview, render: renderOverview },
  job: { load: loadJob, render: renderJob },
  log: { load: loadLog, render: renderLog },
};

let lastShown = null;
let refreshing = null;
// Another refresh asked for while one runs: null (none), false (a reload), true (a navigation).
let again = null;

async function showHealth() {
  const el = $('connection');
  try {
    const { body } = await api('GET', '/health', [503]);
    const status = (body && body.status) || 'unknown';
    let text;
    if (status === 'ok') {
      text = `● Connected to Mesos${body.framework_id ? ` as framework ${body.framework_id}` : ''}`;
    } else if (status === 'standby') {
      // A standby answers reads from the shared store and refuses actions.
      text = `◐ Standby scheduler: actions go to the leader${body.leader ? ` at ${body.leader}` : ''}`;
    } else {
      text = `✗ Not connected to Mesos (${status})${body && body.reconciling ? ', reconciling' : ''}`;
    }
    if (el.textContent !== text) el.textContent = text;
    el.className = `connection ${{ ok: 'b-ok', standby: 'b-warn' }[status] || 'b-bad'}`;
  } catch (error) {
    const text = `✗ ${error.message}`;
    if (el.textContent !== text) el.textContent = text;
    el.className = 'connection b-bad';
  }
}

async function refreshOnce(navigated) {
  const r = route();
  const page = PAGES[r.page];
  const main = $('main');
  let data;
  try {
    [data] = await Promise.all([page.load(r), showHealth()]);
  } catch (error) {
    const key = `error:${location.hash}:${error.message}`;
    if (key !== lastShown) {
      lastShown = key;
      main.replaceChildren(
        h('h1', { id: 'page-title', tabindex: '-1' }, 'Cannot show this page'),
        h('p', { class: 'error', id: 'page-error' }, error.message),
        h('p', {}, h('a', { href: href.overview() }, 'Back to the overview')));
    }
    main.setAttribute('aria-busy', 'false');
    return;
  }
  if (JSON.stringify(route()) !== JSON.stringify(r)) return; // navigated meanwhile
  const key = `${location.hash}:${JSON.stringify(data)}`;
  $('updated').textContent = `Last read ${new Date().toLocaleTimeString()}.`;
  if (key === lastShown && !navigated) return;
  lastShown = key;
  const focused = document.activeElement && document.activeElement.id;
  const scrolled = $('log-text');
  const atBottom = scrolled && window.innerHeight + window.scrollY >= document.body.scrollHeight - 4;
  main.replaceChildren(...[page.render(data, r)].flat(Infinity).filter(Boolean));
  main.setAttribute('aria-busy', 'false');
  document.title = `${$('page-title').textContent} · Shardex`;
  if (navigated) {
    $('page-title').focus({ preventScroll: true });
    window.scrollTo(0, 0);
  } else if (focused && $(focused) && main.contains($(focused))) {
    $(focused).focus({ preventScroll: true });
  }
  if (r.page === 'log' && (navigated || atBottom)) window.scrollTo(0, document.body.scrollHeight);
}

/// Reloads the current page; a call while one runs makes it run once more afterwards.
async function refresh(navigated = false) {
  if (refreshing) {
    again = again || navigated;
    return refreshing;
  }
  refreshing = (async () => {
    try {
      await refreshOnce(navigated);
      while (again !== null) {
        const next = again;
        again = null;
        await refreshOnce(next);
      }
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function start() {
  setUpTokenDialog();
  // The skip link moves focus; following it as a link would change the route.
  $('skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    $('main').focus();
  });
  window.addEventListener('hashchange', () => {
    lastShown = null;
    refresh(true);
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refresh();
  });
  setInterval(() => {
    if (!document.hidden) refresh();
  }, POLL_MS);
  refresh(true);
}

start();
