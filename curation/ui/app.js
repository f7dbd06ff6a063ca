// kiln curation workbench: plain JavaScript, no framework, no build step.
//
// Safety rule: model outputs and task inputs are untrusted. They reach the
// page only as text (textContent, text nodes, attribute values): this file
// never assigns innerHTML or outerHTML, and the page's Content-Security-Policy
// allows no inline script as a second line of defence.
'use strict';

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

  // h builds an element: attributes by name ("class", "text", "on<event>"
  // are special), children as nodes or strings (always text).
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  // ---- State ---------------------------------------------------------

  const S = {
    curator: null,
    types: [],
    view: '',
    list: [], hasMore: false, lastId: null, listSeq: 0,
    task: null,          // the task as GET returns it
    order: [],           // output IDs in column order
    focus: 0,            // index in order of the focused column
    blind: localStorage.getItem('kiln.curation.blind') === '1',
    editing: null,       // output ID whose correction is open
    draft: '',           // the correction being edited
    editError: null,     // {id, message} from correction_invalid
    notesDraft: null,    // notes typed but not saved
    stale: false,        // the last save met a newer version
    saving: Promise.resolve(),
    poll: null,
  };

  // ---- API -----------------------------------------------------------

  class APIError extends Error {
    constructor(status, body) {
      const err = (body && body.error) || {};
      super(err.message || `The server answered ${status}.`);
      this.status = status;
      this.code = err.code || '';
    }
  }

  async function api(method, path, body) {
    const opts = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const res = await fetch('/v1/curation' + path, opts);
    let data = null;
    try { data = await res.json(); } catch { /* empty or not JSON */ }
    if (!res.ok) {
      const e = new APIError(res.status, data);
      if (res.status === 401 && path !== '/session') signedOut('Your session ended. Sign in again.');
      throw e;
    }
    return data;
  }

  // ---- Status messages (the live region) -----------------------------

  let statusTimer = 0;
  function announce(msg, kind) {
    const el = $('#status');
    el.classList.toggle('error', kind === 'error');
    el.textContent = msg;
    clearTimeout(statusTimer);
    statusTimer = setTimeout(() => { el.textContent = ''; }, kind === 'error' ? 10000 : 4000);
  }

  function fail(e) {
    if (e instanceof APIError && e.status === 401) return;
    announce(e.message || String(e), 'error');
  }

  // ---- Sign in and out -----------------------------------------------

  function signedOut(message) {
    S.curator = null;
    S.list = []; S.task = null; S.lastId = null;
    $('#nav').hidden = true;
    $('#header-tools').hidden = true;
    $('#login-error').textContent = message || '';
    showView('login');
    $('#login-key').focus();
  }

  // signedIn takes the session (GET /session's answer): who, and the
  // projects they work in.
  async function signedIn(session) {
    const curator = session.curator;
    S.curator = curator;
    showProjects(session);
    $('#who').textContent = `${curator.name}${curator.role === 'admin' ? ' (admin)' : ''}`;
    $('#nav').hidden = false;
    $('#header-tools').hidden = false;
    try {
      const r = await api('GET', '/types');
      S.types = r.data || [];
    } catch (e) { fail(e); }
    for (const sel of [$('#f-type'), $('#x-type')]) {
      sel.replaceChildren(h('option', { value: '' }, 'All types'),
        ...S.types.map((t) => h('option', { value: t.id }, t.title || t.id)));
    }
    route();
  }

  // showProjects fills the project switcher, shown when the curator works
  // in more than one project.
  function showProjects(session) {
    const projects = session.projects || [];
    const sel = $('#project-select');
    sel.replaceChildren(...projects.map((p) => h('option', { value: p.id }, p.name)));
    if (session.project) sel.value = session.project.id;
    $('#project-switch').hidden = projects.length < 2;
  }

  async function switchProject() {
    const id = $('#project-select').value;
    try {
      const r = await api('POST', '/session/project', { project_id: id });
      // The other project's queue, from its start: a task of this one is
      // not there.
      S.list = []; S.task = null; S.lastId = null; S.view = '';
      if (location.hash !== '#/export') history.replaceState(null, '', '#/tasks');
      await signedIn(r);
      announce(`Working in ${r.project.name}.`);
    } catch (e) { fail(e); }
  }

  async function login(ev) {
    ev.preventDefault();
    const input = $('#login-key');
    const key = input.value.trim();
    if (!key) { $('#login-error').textContent = 'Enter your curator key.'; input.focus(); return; }
    try {
      const r = await api('POST', '/session', { key });
      input.value = '';
      $('#login-error').textContent = '';
      await signedIn(r);
      announce(`Signed in as ${r.curator.name}.`);
    } catch (e) {
      $('#login-error').textContent = e.status === 401 ? 'That key was not accepted.' : e.message;
      input.focus();
    }
  }

  async function logout() {
    try { await api('DELETE', '/session'); } catch (e) { fail(e); }
    location.hash = '';
    signedOut('');
    announce('Signed out.');
  }

  // ---- Views and routing ---------------------------------------------

  function showView(name) {
    S.view = name;
    for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== `view-${name}`;
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.dataset.route === name) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  function route() {
    if (!S.curator) return;
    const m = location.hash.match(/^#\/(tasks|export|pairs|leaderboard|team)(?:\/(.+))?$/);
    const view = m ? m[1] : 'tasks';
    const id = m && m[2] ? decodeURIComponent(m[2]) : '';
    const entering = S.view !== view;
    showView(view);
    if (view === 'pairs' || view === 'leaderboard' || view === 'team') {
      // review.js draws these views.
      document.title = `${view[0].toUpperCase()}${view.slice(1)} · Kiln curation`;
      window.dispatchEvent(new CustomEvent('kiln:view', { detail: { view, curator: S.curator, types: S.types } }));
      return;
    }
    if (view === 'export') {
      document.title = 'Export · Kiln curation';
      loadExports();
      return;
    }
    if (entering || !S.list.length) { loadList(true).then(openFirst); loadStats(); }
    if (id && (!S.task || S.task.id !== id)) openTask(id);
    if (!id) { S.task = null; renderTask(); renderList(); }
  }

  // ---- Progress ------------------------------------------------------

  async function loadStats() {
    let r;
    try { r = await api('GET', '/stats'); } catch (e) { fail(e); return; }
    const rows = r.data || [];
    const sum = (k) => rows.reduce((n, x) => n + (Number(x[k]) || 0), 0);
    const outputs = sum('outputs'), valid = sum('valid'), rated = sum('rated');
    const ratingSum = rows.reduce((n, x) => n + (Number(x.mean_rating) || 0) * (Number(x.rated) || 0), 0);
    const pct = (a, b) => (b ? `${Math.round((100 * a) / b)}%` : '—');
    const tasks = r.tasks || [];
    const taskSum = (k) => tasks.reduce((n, x) => n + (Number(x[k]) || 0), 0);
    const total = taskSum('total'), reviewed = taskSum('reviewed'), skipped = taskSum('skipped');
    const stat = (label, value) => h('div', {}, h('dt', {}, label), h('dd', {}, value));
    $('#progress-summary').textContent = `· reviewed ${reviewed + skipped} of ${total} tasks · rated ${rated} of ${outputs} outputs`;
    showModels([...new Set(rows.map((x) => x.model))].sort());
    const box = $('#progress');
    box.replaceChildren(
      h('dl', { class: 'stat-grid' },
        stat('Outputs', outputs), stat('Valid', pct(valid, outputs)),
        stat('Rated', rated), stat('Mean rating', rated ? (ratingSum / rated).toFixed(2) : '—'),
        stat('Gold', sum('gold')), stat('Corrected', sum('corrected'))),
      h('div', { class: 'progress-line' },
        h('label', { for: 'reviewed-progress' }, `Reviewed ${reviewed} of ${total} tasks` + (skipped ? ` (${skipped} skipped)` : '')),
        h('progress', { id: 'reviewed-progress', max: Math.max(total, 1), value: reviewed + skipped })),
      h('div', { class: 'progress-line' },
        h('label', { for: 'rated-progress' }, `Rated ${rated} of ${outputs} outputs`),
        h('progress', { id: 'rated-progress', max: Math.max(outputs, 1), value: rated })),
      rows.length ? h('details', {},
        h('summary', {}, 'By type and model'),
        h('div', { class: 'table-wrap' }, h('table', { class: 'data-table' },
          h('thead', {}, h('tr', {}, ['Type', 'Model', 'Outputs', 'Valid', 'Rated', 'Mean', 'Gold']
            .map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, rows.map((x) => h('tr', {},
            h('td', {}, x.type), h('td', {}, x.model), h('td', {}, x.outputs), h('td', {}, pct(x.valid, x.outputs)),
            h('td', {}, x.rated), h('td', {}, x.mean_rating == null ? '—' : Number(x.mean_rating).toFixed(2)),
            h('td', {}, x.gold))))))) : null);
  }

  // showModels lists the models present in the model filter, keeping the
  // one chosen.
  function showModels(models) {
    const sel = $('#f-model');
    const cur = sel.value;
    if (cur && !models.includes(cur)) models.push(cur);
    sel.replaceChildren(h('option', { value: '' }, 'Any model'), ...models.map((m) => h('option', { value: m }, m)));
    sel.value = cur;
  }

  let statsTimer = 0;
  function refreshStatsSoon() { clearTimeout(statsTimer); statsTimer = setTimeout(loadStats, 800); }

  // ---- Queue ---------------------------------------------------------

  // openFirst opens the queue's first task when none is named: the page
  // never stands empty while there is work.
  function openFirst() {
    if (S.view !== 'tasks' || !S.list.length || /^#\/tasks\/./.test(location.hash)) return;
    history.replaceState(null, '', `#/tasks/${encodeURIComponent(S.list[0].id)}`);
    openTask(S.list[0].id);
  }

  function filters() {
    const p = new URLSearchParams();
    const f = $('#filters');
    for (const name of ['q', 'type', 'model', 'status', 'gold', 'rated', 'invalid']) {
      const v = f.elements[name].value.trim();
      // The server searches for 3 characters or more: fewer filter nothing yet.
      if (v && !(name === 'q' && [...v].length < 3)) p.set(name, v);
    }
    return p;
  }

  async function loadList(reset) {
    const p = filters();
    p.set('limit', '50');
    if (!reset && S.lastId) p.set('after', S.lastId);
    const seq = ++S.listSeq;
    let r;
    try { r = await api('GET', '/tasks?' + p); } catch (e) { fail(e); return; }
    if (seq !== S.listSeq) return; // a newer filter won
    S.list = reset ? r.data || [] : S.list.concat(r.data || []);
    S.hasMore = !!r.has_more;
    S.lastId = r.last_id || (S.list.length ? S.list[S.list.length - 1].id : null);
    renderList();
    const n = [...p.keys()].filter((k) => !['q', 'limit', 'after'].includes(k)).length;
    $('#filter-summary').textContent = n ? `(${n} on)` : '';
    if (reset) announce(`${S.list.length}${S.hasMore ? '+' : ''} tasks in the queue.`);
  }

  function statusBadge(status) {
    const cls = { reviewed: 'badge-good', skipped: 'badge-warn', pending: 'badge-info' }[status] || '';
    return h('span', { class: `badge ${cls}` }, status);
  }

  function renderList() {
    const current = S.task && S.task.id;
    $('#task-list').replaceChildren(...S.list.map((t) => {
      const n = t.outputs || 0, valid = t.valid || 0, rated = t.rated || 0;
      return h('li', {},
        h('a', { class: 'task-link', href: `#/tasks/${encodeURIComponent(t.id)}`, 'aria-current': t.id === current ? 'true' : null },
          h('span', { class: 'task-preview' }, t.preview || t.key),
          h('span', { class: 'task-key' }, h('code', {}, t.key), ' · ', t.type),
          h('span', { class: 'task-meta' },
            statusBadge(t.status),
            t.gold_output_id ? h('span', { class: 'badge badge-gold' }, h('span', { 'aria-hidden': 'true' }, '★ '), 'gold') : null,
            h('span', { class: `badge ${valid < n ? 'badge-bad' : 'badge-good'}`, title: 'Outputs valid against the schema' }, `${valid}/${n} valid`),
            h('span', { class: `badge ${n && rated === n ? 'badge-good' : 'badge-neutral'}`, title: 'Outputs rated' }, `${rated}/${n} rated`),
            t.near_duplicate_of ? h('span', { class: 'badge badge-warn badge-dup', title: `Nearly the same input as task ${t.near_duplicate_of}` }, 'near duplicate') : null)));
    }));
    $('#queue-count').textContent = S.list.length ? `(${S.list.length}${S.hasMore ? '+' : ''})` : '';
    $('#queue-empty').hidden = S.list.length > 0;
    $('#load-more').hidden = !S.hasMore;
    const cur = $('#task-list a[aria-current="true"]');
    if (cur) cur.scrollIntoView({ block: 'nearest' });
  }

  let filterTimer = 0;
  function applyFiltersSoon(delay) {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => loadList(true), delay);
  }

  // ---- Task ----------------------------------------------------------

  async function openTask(id) {
    let t;
    try { t = await api('GET', `/tasks/${encodeURIComponent(id)}?blind=${S.blind}`); } catch (e) { fail(e); return; }
    S.editing = null; S.draft = ''; S.editError = null; S.notesDraft = null; S.stale = false;
    if ($('#status').classList.contains('error')) $('#status').textContent = ''; // it was about the task before
    setTask(t, true);
    document.title = `${t.type} · ${t.key} · Kiln curation`;
    const active = document.activeElement;
    if (!active || active === document.body || !active.isConnected) $('#task-title').focus({ preventScroll: true });
  }

  function shuffle(a) {
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }

  function columnOrder(t) {
    const ids = (t.outputs || []).map((o) => o.id);
    return S.blind ? shuffle(ids) : ids;
  }

  function setTask(t, fresh) {
    S.task = t;
    const ids = (t.outputs || []).map((o) => o.id);
    if (fresh || S.order.length !== ids.length || !ids.every((id) => S.order.includes(id))) {
      S.order = columnOrder(t);
      S.focus = 0;
    }
    renderTask();
    renderList();
  }

  function outputAt(i) {
    const id = S.order[i];
    return S.task && (S.task.outputs || []).find((o) => o.id === id);
  }

  function columnName(o) {
    const i = S.order.indexOf(o.id);
    return S.blind ? `Model ${LETTERS[i] || i + 1}` : o.model;
  }

  // renderTask redraws the task, keeping keyboard focus on the control
  // that had it (controls carry a data-key that survives the redraw).
  function renderTask() {
    const body = $('#task-body');
    const active = document.activeElement;
    const key = active && body.contains(active) ? active.dataset.key : null;
    $('#task-empty').hidden = !!S.task;
    if (!S.task) { body.replaceChildren(); return; }
    const t = S.task;
    const outs = S.order.map((_, i) => outputAt(i)).filter(Boolean);
    const grid = h('div', { class: 'outputs' }, outs.map(renderOutput));
    grid.style.gridTemplateColumns = `repeat(${Math.max(outs.length, 1)}, minmax(17rem, 1fr))`;
    body.replaceChildren(
      h('div', { class: 'card' },
        h('div', { class: 'task-head' },
          h('div', {},
            h('h1', { id: 'task-title', tabindex: '-1' }, `${t.type} · ${t.key}`),
            h('p', { class: 'task-meta' }, statusBadge(t.status), ` version ${t.version} · updated ${when(t.updated_at)}`)),
          h('div', { class: 'toolbar', role: 'group', 'aria-label': 'Task actions' },
            h('button', { type: 'button', class: 'btn btn-ghost-dark', 'data-key': 'prev', 'aria-keyshortcuts': 'k', onclick: () => step(-1) }, '← Previous'),
            h('button', { type: 'button', class: 'btn btn-ghost-dark', 'data-key': 'next', 'aria-keyshortcuts': 'j', onclick: () => step(1) }, 'Next →'),
            h('button', { type: 'button', class: 'btn btn-secondary toggle', 'data-key': 'blind', 'aria-pressed': String(S.blind), 'aria-keyshortcuts': 'b', onclick: toggleBlind }, 'Blind review'),
            h('button', { type: 'button', class: 'btn btn-good', 'data-key': 'reviewed', 'aria-keyshortcuts': 'r', onclick: () => setStatus('reviewed') }, 'Reviewed'),
            h('button', { type: 'button', class: 'btn btn-warn', 'data-key': 'skip', 'aria-keyshortcuts': 's', onclick: () => setStatus('skipped') }, 'Skip'))),
        S.stale ? h('div', { class: 'banner banner-warn', role: 'alert' },
          'Someone else saved this task meanwhile, so your last change was not saved.',
          h('button', { type: 'button', class: 'btn btn-secondary', 'data-key': 'reload', onclick: () => openTask(t.id) }, 'Reload task')) : null,
        h('h2', { class: 'input-title' }, 'Input'),
        renderInput(t)),
      h('h2', { class: 'visually-hidden' }, 'Outputs'),
      grid,
      judgeVerdicts(t),
      h('div', { class: 'card' },
        h('label', { for: 'notes' }, 'Notes'),
        h('textarea', { id: 'notes', rows: '3', 'data-key': 'notes', 'aria-keyshortcuts': 'n', oninput: (e) => { S.notesDraft = e.target.value; } }),
        h('div', { class: 'editor-actions' },
          h('button', { type: 'button', class: 'btn btn-secondary', 'data-key': 'save-notes', onclick: saveNotes }, 'Save notes')),
        renderHistory(t)));
    $('#notes').value = S.notesDraft != null ? S.notesDraft : t.notes || '';
    const ed = $('#task-body textarea.correction');
    if (ed) ed.value = S.draft;
    markFocus();
    if (key) {
      const again = body.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (again) again.focus({ preventScroll: true });
    }
  }

  function renderInput(t) {
    const hints = (t.rendering && t.rendering.data) || [];
    if (t.data && hints.length) {
      return h('div', { class: 'scroll-box' }, hints.filter((f) => t.data[f.field] != null).map((f) =>
        h('section', { class: 'input-field' }, h('h3', {}, f.label || f.field), renderValue(t.data[f.field], f))));
    }
    const msgs = (t.input && t.input.messages) || [];
    if (!msgs.length) return h('p', { class: 'muted' }, 'This task has no input to show.');
    return h('div', { class: 'scroll-box' }, msgs.map((m) => h('div', { class: 'message' },
      h('div', { class: 'message-role' }, m.role),
      h('p', { class: 'text' }, messageText(m.content)))));
  }

  function messageText(c) {
    if (typeof c === 'string') return c;
    if (Array.isArray(c)) return c.map((p) => (p && typeof p.text === 'string' ? p.text : JSON.stringify(p))).join('\n');
    return JSON.stringify(c, null, 2);
  }

  function parseJSON(s) {
    try { return { ok: true, value: JSON.parse(s) }; } catch { return { ok: false }; }
  }

  function pretty(v) {
    if (typeof v === 'string') {
      const p = parseJSON(v);
      return p.ok ? JSON.stringify(p.value, null, 2) : v;
    }
    return JSON.stringify(v, null, 2);
  }

  function renderOutput(o, i) {
    const t = S.task;
    const name = columnName(o);
    const headId = `out-head-${i}`;
    const isGold = t.gold_output_id === o.id;
    const shown = o.corrected != null ? parseJSON(o.corrected) : { ok: o.parsed != null, value: o.parsed };
    const col = h('section', {
      class: `output${isGold ? ' gold' : ''}`, tabindex: '0', 'data-key': `col:${o.id}`,
      'data-index': String(i), 'aria-labelledby': headId,
    },
    h('div', { class: 'output-head' },
      h('div', {},
        h('h2', { id: headId }, name),
        S.blind ? null : h('div', { class: 'output-sub' }, [
          o.latency_ms != null ? h('span', { class: 'latency' }, latency(o.latency_ms)) : null,
          o.output_tokens ? `${o.latency_ms != null ? ' · ' : ''}${o.output_tokens} tokens out · ${o.input_tokens} in` : null])),
      h('div', { class: 'toolbar' },
        o.valid ? h('span', { class: 'badge badge-good' }, 'valid') : h('span', { class: 'badge badge-bad' }, 'invalid'),
        o.corrected != null ? h('span', { class: 'badge badge-info' }, 'corrected') : null)),
    h('div', { class: 'annotate' },
      h('div', { class: 'rating', role: 'group', 'aria-label': `Rating for ${name}` },
        [1, 2, 3, 4, 5].map((n) => h('button', {
          type: 'button', class: 'rate', 'data-key': `rate:${o.id}:${n}`, 'aria-pressed': String(o.rating === n),
          'aria-label': `Rate ${n} of 5`, 'aria-keyshortcuts': String(n), onclick: () => rate(o.id, n),
        }, String(n)))),
      h('button', {
        type: 'button', class: 'star', 'data-key': `gold:${o.id}`, 'aria-pressed': String(isGold), 'aria-keyshortcuts': 'g',
        'aria-label': `Gold star for ${name}`, onclick: () => gold(o.id),
      }, h('span', { class: 'star-icon', 'aria-hidden': 'true' }, isGold ? '★ ' : '☆ '), 'Gold')),
    judgeRatings(o),
    o.valid ? null : h('div', { class: 'invalid-box', role: 'note' },
      h('p', {}, h('strong', {}, 'Invalid output'), o.reason ? ` (${o.reason})` : ''),
      o.message ? h('p', {}, o.message) : null),
    o.corrected != null ? h('p', { class: 'note-box' },
      o.corrected_valid === false ? `Showing the correction, saved although it does not match the schema: ${o.corrected_message || ''}`
        : 'Showing the curator\'s correction.') : null,
    shown.ok ? renderParsed(shown.value, t.rendering && t.rendering.output) : h('pre', { class: 'raw' }, o.content || ''),
    h('details', {}, h('summary', {}, 'Raw output'), h('pre', { class: 'raw' }, o.content || '')),
    S.editing === o.id ? renderEditor(o, name) : h('div', { class: 'editor-actions' },
      h('button', { type: 'button', class: 'btn btn-secondary', 'data-key': `edit:${o.id}`, 'aria-keyshortcuts': 'e', onclick: () => edit(o.id) },
        o.corrected != null ? 'Edit correction' : 'Correct'),
      o.corrected != null ? h('button', { type: 'button', class: 'btn btn-ghost-dark', 'data-key': `clear:${o.id}`, onclick: () => clearCorrection(o.id) }, 'Remove correction') : null));
    col.addEventListener('click', () => { S.focus = S.order.indexOf(o.id); markFocus(); });
    return col;
  }

  // judgeRatings are the model judges' ratings of an output (pre-labels).
  function judgeRatings(o) {
    const ps = (S.task.prelabels || []).filter((p) => p.kind === 'rating' && p.output_ids[0] === o.id);
    if (!ps.length) return null;
    return h('ul', { class: 'prelabels', 'aria-label': 'Judges\' ratings' }, ps.map((p) => h('li', { class: 'prelabel', 'data-judge': p.judge_id },
      h('span', { class: 'badge badge-info' }, `Judge ${p.model}: ${p.value}/5`), p.reason ? ` ${p.reason}` : '')));
  }

  // judgeVerdicts are the model judges' pairwise verdicts on the task, and
  // how many pre-labels blind review hides until the curator decides.
  function judgeVerdicts(t) {
    const ps = (t.prelabels || []).filter((p) => p.kind === 'preference');
    const hidden = t.prelabels_hidden || 0;
    if (!ps.length && !hidden) return null;
    const name = (id) => {
      const o = (t.outputs || []).find((x) => x.id === id);
      return o ? columnName(o) : id;
    };
    const said = (p) => {
      const [a, b] = p.output_ids;
      return { a: `${name(a)} is better than ${name(b)}`, b: `${name(b)} is better than ${name(a)}`,
        tie: `${name(a)} and ${name(b)} tie`, both_bad: `${name(a)} and ${name(b)} are both bad` }[p.value] || p.value;
    };
    return h('section', { class: 'card judges', id: 'task-judges', 'aria-labelledby': 'judges-title' },
      h('h2', { id: 'judges-title' }, 'Model judges'),
      ps.length ? h('ul', { class: 'prelabels' }, ps.map((p) => h('li', { class: 'prelabel', 'data-judge': p.judge_id },
        h('strong', {}, `Judge ${p.model}: `), said(p), p.reason ? ` — ${p.reason}` : ''))) : null,
      hidden ? h('p', { class: 'muted', id: 'prelabels-hidden' },
        `${hidden} pre-label${hidden === 1 ? '' : 's'} hidden in blind review until you decide: rate an output, or judge its pair in Pairs, to see the judges' answer.`) : null);
  }

  function latency(ms) {
    return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
  }

  // refusal turns correction_invalid's message, written for scripts, into
  // words for a curator: what is wrong, and what they can do.
  function refusal(message) {
    const m = /does not match the (\S+) schema: (?:[a-z_]+: )?(.*?)\.? Send force: true to save it anyway\.?$/s.exec(message || '');
    if (!m) return message;
    return `This correction does not match the ${m[1]} schema: ${m[2]}. Fix it and save again, or save it anyway: it will be kept, marked as not matching.`;
  }

  function renderEditor(o, name) {
    const err = S.editError && S.editError.id === o.id ? S.editError.message : '';
    const id = `editor-${o.id}`;
    return h('div', { class: 'editor' },
      h('label', { for: id }, `Correction for ${name} (JSON)`),
      h('textarea', {
        id, class: 'correction', rows: '14', spellcheck: 'false', 'data-key': `editor:${o.id}`,
        'aria-describedby': `${id}-help ${id}-error`, 'aria-invalid': err ? 'true' : null,
        oninput: (e) => { S.draft = e.target.value; },
        onkeydown: (e) => {
          if (e.key === 'Escape') { e.preventDefault(); cancelEdit(); }
          if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); saveCorrection(false); }
        },
      }),
      h('p', { id: `${id}-help`, class: 'muted' }, 'Ctrl+Enter saves, Esc cancels.'),
      h('p', { id: `${id}-error`, class: 'form-error', role: 'alert' }, err),
      h('div', { class: 'editor-actions' },
        h('button', { type: 'button', class: 'btn btn-primary', 'data-key': `save:${o.id}`, onclick: () => saveCorrection(false) }, 'Validate & save'),
        err ? h('button', { type: 'button', class: 'btn btn-warn', 'data-key': `force:${o.id}`, onclick: () => saveCorrection(true) }, 'Save anyway') : null,
        h('button', { type: 'button', class: 'btn btn-ghost-dark', 'data-key': `cancel:${o.id}`, onclick: cancelEdit }, 'Cancel')));
  }

  function renderHistory(t) {
    const hist = t.history || [];
    if (!hist.length) return null;
    return h('details', { class: 'history-box' },
      h('summary', {}, `History (${hist.length})`),
      h('ol', { class: 'history' }, hist.slice().reverse().map((x) => h('li', {},
        h('strong', {}, x.action), ` by ${x.curator || 'someone'} · ${when(x.at)}`,
        x.detail ? h('div', { class: 'muted' }, summarise(x.detail)) : null))));
  }

  function summarise(d) {
    const s = typeof d === 'string' ? d : JSON.stringify(d);
    return s.length > 240 ? s.slice(0, 240) + '…' : s;
  }

  function when(v) {
    if (v == null || v === '') return '—';
    const d = typeof v === 'number' ? new Date(v < 1e12 ? v * 1000 : v) : new Date(v);
    return isNaN(d) ? String(v) : d.toLocaleString();
  }

  function markFocus() {
    for (const col of document.querySelectorAll('#task-body .output')) {
      col.classList.toggle('focused', Number(col.dataset.index) === S.focus);
    }
  }

  // ---- Rendering values by hint --------------------------------------

  function pointer(v, p) {
    if (!p || p === '/') return v;
    for (const raw of p.split('/').slice(1)) {
      const k = raw.replace(/~1/g, '/').replace(/~0/g, '~');
      if (v == null || typeof v !== 'object' || !(k in v)) return undefined;
      v = v[k];
    }
    return v;
  }

  function renderParsed(value, hints) {
    if (!hints || !hints.length || value == null || typeof value !== 'object') {
      return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
    }
    return h('div', { class: 'fields' }, hints.map((hint) => {
      const v = pointer(value, hint.pointer);
      return h('section', { class: 'out-field' },
        h('h3', {}, hint.label || hint.pointer),
        v === undefined ? h('p', { class: 'muted' }, 'missing') : renderValue(v, hint));
    }));
  }

  function renderValue(v, hint) {
    switch (hint.format) {
      case 'markdown': return typeof v === 'string' ? renderMarkdown(v) : renderJSON(v);
      case 'table': return renderTable(v, hint.columns, hint.column_tones);
      case 'list': return renderItems(v);
      case 'score': return renderScore(v, hint);
      case 'badge': return renderBadge(v, hint);
      case 'json': return renderJSON(v);
      default: return renderText(v);
    }
  }

  function renderText(v) {
    if (v === null) return h('p', { class: 'muted' }, 'none');
    if (typeof v === 'object') return renderJSON(v);
    return h('p', { class: 'text' }, String(v));
  }

  function renderJSON(v) {
    return h('pre', { class: 'json' }, JSON.stringify(v, null, 2));
  }

  // Markdown, safely: blocks become paragraphs, bullet blocks lists and
  // heading lines bold paragraphs; **bold** and `code` are kept. All text.
  function renderMarkdown(text) {
    const inline = (s) => s.split(/(\*\*[^*]+\*\*|`[^`]+`)/).map((part) => {
      if (/^\*\*[^*]+\*\*$/.test(part)) return h('strong', {}, part.slice(2, -2));
      if (/^`[^`]+`$/.test(part)) return h('code', {}, part.slice(1, -1));
      return part;
    });
    const bullet = /^\s*(?:[-*+]|\d+[.)])\s+/;
    return h('div', { class: 'md' }, text.split(/\n\s*\n/).filter((b) => b.trim()).map((block) => {
      const lines = block.split('\n');
      if (lines.every((l) => bullet.test(l))) return h('ul', {}, lines.map((l) => h('li', {}, inline(l.replace(bullet, '')))));
      if (/^#{1,6}\s/.test(block)) return h('p', { class: 'md-h' }, inline(block.replace(/^#{1,6}\s+/, '')));
      return h('p', { class: 'text' }, inline(block));
    }));
  }

  function cell(v) {
    if (v == null) return '';
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  }

  function renderTable(v, columns, tones) {
    if (!Array.isArray(v)) return renderJSON(v);
    if (!v.length) return h('p', { class: 'muted' }, 'none');
    if (!v.every((r) => r && typeof r === 'object' && !Array.isArray(r))) return renderItems(v);
    const cols = columns && columns.length ? columns : [...new Set(v.flatMap((r) => Object.keys(r)))];
    return h('div', { class: 'table-wrap' }, h('table', { class: 'data-table' },
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c.replace(/_/g, ' '))))),
      h('tbody', {}, v.map((r) => h('tr', {}, cols.map((c) => h('td', {},
        tones && tones[c] && r[c] != null ? toneBadge(r[c], tones[c]) : cell(r[c]))))))));
  }

  function renderItems(v) {
    if (!Array.isArray(v)) return renderText(v);
    if (!v.length) return h('p', { class: 'muted' }, 'none');
    return h('ul', { class: 'plain-list' }, v.map((x) => h('li', {}, cell(x))));
  }

  function renderScore(v, hint) {
    const n = Number(v);
    if (typeof v !== 'number' || !isFinite(n)) return renderText(v);
    const min = hint.min ?? 0;
    const max = hint.max ?? Math.max(1, n);
    const frac = Math.min(1, Math.max(0, (n - min) / (max - min || 1)));
    const good = hint.lower_is_better ? 1 - frac : frac;
    const tone = good >= 2 / 3 ? 'positive' : good < 1 / 3 ? 'negative' : 'neutral';
    const fill = h('div', { class: `score-fill tone-${tone}`, 'data-tone': tone });
    fill.style.width = `${(frac * 100).toFixed(1)}%`;
    return h('div', {
      class: 'score', role: 'meter', 'aria-label': hint.label || 'Score',
      'aria-valuenow': n, 'aria-valuemin': min, 'aria-valuemax': max, 'aria-valuetext': `${n} of ${max}`,
    }, h('div', { class: 'score-track' }, fill), h('span', { class: 'score-value', 'aria-hidden': 'true' }, `${n} / ${max}`));
  }

  // A value's colour comes from its tone in the type's rendering hints
  // (positive, neutral, negative), never from how the word looks.
  const TONE_CLASS = { positive: 'badge-good', neutral: 'badge-neutral', negative: 'badge-bad' };

  function toneBadge(v, tones) {
    const tone = (tones && TONE_CLASS[tones[String(v)]]) ? tones[String(v)] : 'neutral';
    const s = typeof v === 'boolean' ? (v ? 'yes' : 'no') : String(v);
    return h('span', { class: `badge ${TONE_CLASS[tone]}`, 'data-tone': tone }, s.replace(/_/g, ' '));
  }

  function renderBadge(v, hint) {
    if (v == null) return h('p', { class: 'muted' }, 'none');
    if (typeof v === 'object') return renderJSON(v);
    return h('p', {}, toneBadge(v, hint && hint.tones));
  }

  // ---- Annotation ----------------------------------------------------

  // annotate sends a change for the task on screen with the version it
  // read; changes are sent one after another, each with the version the
  // previous one returned. It resolves to null on success, or the error.
  function annotate(patch, done) {
    const taskID = S.task && S.task.id;
    const run = async () => {
      const t = S.task;
      if (!t) return null;
      if (t.id !== taskID) { // the change was for a task left meanwhile
        announce('Not saved: you moved to another task before the change was sent.', 'error');
        return new Error('moved on');
      }
      try {
        const r = await api('POST', `/tasks/${encodeURIComponent(t.id)}/annotations?blind=${S.blind}`, { version: t.version, ...patch });
        if (!S.task || S.task.id !== t.id) return null; // moved on meanwhile
        S.stale = false;
        const item = S.list.find((x) => x.id === r.id);
        if (item) {
          Object.assign(item, { status: r.status, gold_output_id: r.gold_output_id, version: r.version, updated_at: r.updated_at,
            rated: (r.outputs || []).filter((o) => o.rating != null).length });
        }
        if (done) done();
        setTask(r, false);
        refreshStatsSoon();
        return null;
      } catch (e) {
        if (e.status === 409 || e.code === 'stale_task') {
          S.stale = true;
          renderTask();
          announce('Not saved: someone else changed this task. Reload it to see their change.', 'error');
        } else if (e.code !== 'correction_invalid') {
          fail(e);
        }
        return e;
      }
    };
    const p = S.saving.then(run);
    S.saving = p.catch(() => null);
    return p;
  }

  async function rate(id, n) {
    const o = S.task.outputs.find((x) => x.id === id);
    const clear = o.rating === n;
    const name = columnName(o);
    const err = await annotate({ outputs: [clear ? { id, clear_rating: true } : { id, rating: n }] });
    if (err) return;
    announce(clear ? `Rating of ${name} cleared.` : `Rated ${name} ${n} of 5.`);
    if (!clear) moveOn(id);
  }

  // moveOn follows a rating: to the next output still unrated, or, when
  // every output is rated, to the next task.
  function moveOn(id) {
    if (!S.task) return;
    const at = S.order.indexOf(id);
    const unrated = (i) => { const o = outputAt(i); return o && o.rating == null; };
    for (let k = 1; k < S.order.length; k++) {
      const i = (at + k) % S.order.length;
      if (unrated(i)) {
        S.focus = i;
        markFocus();
        const col = $(`#task-body .output[data-index="${i}"]`);
        if (col) col.focus();
        return;
      }
    }
    step(1);
  }

  async function gold(id) {
    const o = S.task.outputs.find((x) => x.id === id);
    const clear = S.task.gold_output_id === id;
    const err = await annotate({ gold_output_id: clear ? '' : id });
    if (!err) announce(clear ? 'Gold star removed.' : `Gold star on ${columnName(o)}.`);
  }

  async function setStatus(status) {
    const err = await annotate({ status });
    if (err) return;
    announce(status === 'reviewed' ? 'Marked reviewed.' : 'Skipped.');
    if (status === 'skipped') step(1);
  }

  async function saveNotes() {
    const notes = $('#notes').value;
    const err = await annotate({ notes }, () => { S.notesDraft = null; });
    if (!err) announce('Notes saved.');
  }

  function edit(id) {
    const o = S.task.outputs.find((x) => x.id === id);
    if (!o) return;
    S.focus = S.order.indexOf(id);
    if (S.editing !== id) {
      S.editing = id;
      S.editError = null;
      S.draft = o.corrected != null ? pretty(o.corrected) : o.parsed != null ? JSON.stringify(o.parsed, null, 2) : pretty(o.content || '');
      renderTask();
    }
    const ed = $('#task-body textarea.correction');
    if (ed) ed.focus();
  }

  function cancelEdit() {
    const id = S.editing;
    S.editing = null; S.editError = null; S.draft = '';
    renderTask();
    const btn = id && $(`[data-key="${CSS.escape('edit:' + id)}"]`);
    if (btn) btn.focus();
  }

  async function saveCorrection(force) {
    const id = S.editing;
    if (!id) return;
    const text = $('#task-body textarea.correction').value;
    S.draft = text;
    const p = parseJSON(text);
    const corrected = p.ok ? JSON.stringify(p.value) : text;
    const entry = { id, corrected };
    if (force) entry.force = true;
    const err = await annotate({ outputs: [entry] }, () => { S.editing = null; S.editError = null; S.draft = ''; });
    if (!err) {
      announce(force ? 'Correction saved although it does not match the schema.' : 'Correction saved.');
      const btn = $(`[data-key="${CSS.escape('edit:' + id)}"]`);
      if (btn) btn.focus();
    } else if (err.code === 'correction_invalid') {
      S.editError = { id, message: refusal(err.message) };
      renderTask();
      announce('The correction does not match the schema.', 'error');
    }
  }

  async function clearCorrection(id) {
    const err = await annotate({ outputs: [{ id, clear_correction: true }] });
    if (!err) announce('Correction removed.');
  }

  // refreshPrelabels reads the task's pre-labels again, as blind review
  // now shows them.
  async function refreshPrelabels(id) {
    let t;
    try { t = await api('GET', `/tasks/${encodeURIComponent(id)}?blind=${S.blind}`); } catch (e) { fail(e); return; }
    if (!S.task || S.task.id !== id) return;
    if (JSON.stringify(S.task.prelabels || []) === JSON.stringify(t.prelabels || []) &&
      (S.task.prelabels_hidden || 0) === (t.prelabels_hidden || 0)) return; // nothing to redraw
    S.task.prelabels = t.prelabels;
    S.task.prelabels_hidden = t.prelabels_hidden;
    renderTask();
  }

  function toggleBlind() {
    S.blind = !S.blind;
    localStorage.setItem('kiln.curation.blind', S.blind ? '1' : '0');
    if (S.task) { S.order = columnOrder(S.task); S.focus = 0; S.editing = null; }
    renderTask();
    if (S.task) refreshPrelabels(S.task.id);
    announce(S.blind ? 'Blind review on: models are hidden and shuffled.' : 'Blind review off.');
  }

  async function step(delta) {
    if (!S.list.length) return;
    let i = S.task ? S.list.findIndex((x) => x.id === S.task.id) : -1;
    i = i < 0 ? (delta > 0 ? 0 : S.list.length - 1) : i + delta;
    if (i >= S.list.length && S.hasMore) await loadList(false);
    if (i < 0 || i >= S.list.length) { announce(delta > 0 ? 'This is the last task.' : 'This is the first task.'); return; }
    location.hash = `#/tasks/${encodeURIComponent(S.list[i].id)}`;
  }

  function focusColumn(delta) {
    if (!S.order.length) return;
    S.focus = Math.min(S.order.length - 1, Math.max(0, S.focus + delta));
    markFocus();
    const col = $(`#task-body .output[data-index="${S.focus}"]`);
    if (col) col.focus();
  }

  // ---- Keyboard ------------------------------------------------------

  function onKey(e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || !S.curator) return;
    const tgt = e.target;
    if (tgt instanceof Element && tgt.closest('input, textarea, select, [contenteditable=""], [contenteditable="true"]')) return;
    if ($('#help').open) return;
    const k = e.key;
    const act = {
      '?': openHelp,
      '/': () => { if (S.view !== 'tasks') location.hash = '#/tasks'; $('#f-q').focus(); },
    }[k];
    if (act) { e.preventDefault(); act(); return; }
    if (S.view !== 'tasks') return;
    const o = outputAt(S.focus);
    const task = {
      j: () => step(1),
      k: () => step(-1),
      h: () => focusColumn(-1),
      l: () => focusColumn(1),
      g: () => o && gold(o.id),
      e: () => o && edit(o.id),
      n: () => { const n = $('#notes'); if (n) n.focus(); },
      r: () => S.task && setStatus('reviewed'),
      s: () => S.task && setStatus('skipped'),
      b: () => S.task && toggleBlind(),
    }[k];
    if (task) { e.preventDefault(); task(); return; }
    if (/^[1-5]$/.test(k) && o) { e.preventDefault(); rate(o.id, Number(k)); }
  }

  function openHelp() {
    const d = $('#help');
    if (!d.open) d.showModal();
  }

  // ---- Export --------------------------------------------------------

  function safeURL(u) {
    try {
      const url = new URL(u, location.href);
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
    } catch { return null; }
  }

  function downloadLink(x, text) {
    const href = x.download_url && safeURL(x.download_url);
    return href ? h('a', { class: 'download', href, download: '' }, text) : null;
  }

  function rows(n) { return `${n} row${n === 1 ? '' : 's'}`; }

  function exportState(x) {
    switch (x.status) {
      case 'completed': return `Completed: ${rows(x.rows)}.`;
      case 'failed': return `Failed: ${x.error || 'unknown error'}`;
      case 'running': return `Running: ${x.done} of ${x.total || '?'} tasks.`;
      default: return 'Queued…';
    }
  }

  function renderCurrentExport(x) {
    $('#export-current').hidden = false;
    $('#x-state').textContent = `${x.id} · ${x.format} · ${exportState(x)}`;
    const bar = $('#x-progress');
    bar.max = Math.max(Number(x.total) || 0, 1);
    bar.value = x.status === 'completed' ? bar.max : Number(x.done) || 0;
    const link = downloadLink(x, `Download ${x.format} (${rows(x.rows)})`);
    $('#x-download').replaceChildren(...(link ? [link] : []));
  }

  async function startExport(ev) {
    ev.preventDefault();
    const f = ev.target.elements;
    const body = { format: f.format.value };
    if (body.format === 'openai_sft') body.source = f.source.value;
    if (f.type.value) body.type = f.type.value;
    const per = parseInt(f.per_type.value, 10);
    if (body.format === 'icl' && per > 0) body.per_type = per;
    $('#export-error').textContent = '';
    const btn = $('#x-start');
    btn.disabled = true;
    try {
      const x = await api('POST', '/exports', body);
      renderCurrentExport(x);
      announce(`Export ${x.id} started.`);
      pollExport(x.id);
    } catch (e) {
      $('#export-error').textContent = e.code === 'empty_export' ? `Nothing to export: ${e.message}` : e.message;
      btn.disabled = false;
    }
  }

  function pollExport(id) {
    clearTimeout(S.poll);
    S.poll = setTimeout(async () => {
      let x;
      try { x = await api('GET', `/exports/${encodeURIComponent(id)}`); } catch (e) { fail(e); $('#x-start').disabled = false; return; }
      renderCurrentExport(x);
      if (x.status === 'completed' || x.status === 'failed') {
        $('#x-start').disabled = false;
        announce(x.status === 'completed' ? `Export ready: ${rows(x.rows)}.` : `Export failed: ${x.error}`, x.status === 'failed' ? 'error' : '');
        loadExports();
      } else {
        pollExport(id);
      }
    }, 500);
  }

  async function loadExports() {
    let r;
    try { r = await api('GET', '/exports'); } catch (e) { fail(e); return; }
    const rows = r.data || [];
    $('#export-list').replaceChildren(...(rows.length ? rows.map((x) => h('tr', {},
      h('td', {}, h('code', {}, x.id)), h('td', {}, x.format), h('td', {}, exportState(x)), h('td', {}, x.rows ?? 0),
      h('td', {}, downloadLink(x, 'Download') || h('span', { class: 'muted' }, '—')))) :
      [h('tr', {}, h('td', { colspan: '5', class: 'muted' }, 'No export yet.'))]));
  }

  // ---- Start ---------------------------------------------------------

  function bind() {
    $('#login-form').addEventListener('submit', login);
    $('#logout').addEventListener('click', logout);
    $('#help-open').addEventListener('click', openHelp);
    $('#load-more').addEventListener('click', () => loadList(false));
    const f = $('#filters');
    f.addEventListener('submit', (e) => { e.preventDefault(); applyFiltersSoon(0); });
    f.addEventListener('change', (e) => { if (e.target.tagName === 'SELECT') applyFiltersSoon(0); });
    f.addEventListener('input', (e) => { if (e.target.tagName === 'INPUT') applyFiltersSoon(350); });
    f.addEventListener('reset', () => applyFiltersSoon(0));
    $('#export-form').addEventListener('submit', startExport);
    // Show only the options the chosen format uses.
    const perType = () => {
      $('#x-per-type-field').hidden = $('#x-format').value !== 'icl';
      $('#x-source-field').hidden = $('#x-format').value !== 'openai_sft';
    };
    $('#x-format').addEventListener('change', perType);
    perType();
    $('#project-select').addEventListener('change', switchProject);
    $('#task-body').addEventListener('focusin', (e) => {
      const col = e.target.closest('.output');
      if (col) { S.focus = Number(col.dataset.index); markFocus(); }
    });
    document.addEventListener('keydown', onKey);
    window.addEventListener('hashchange', route);
  }

  async function start() {
    bind();
    try {
      const r = await api('GET', '/session');
      await signedIn(r);
    } catch (e) {
      if (e.status !== 401) $('#login-error').textContent = `Could not reach kiln: ${e.message}`;
      signedOut($('#login-error').textContent);
    }
  }

  start();
})();
