// kiln curation workbench, second edition: pairwise preferences, the
// leaderboard, and the team's progress, assignment and agreement. app.js
// routes here with a 'kiln:view' event. Same safety rule as app.js: model
// outputs reach the page as text only, never as markup.
'use strict';

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);

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

  async function api(method, path, body) {
    const opts = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const res = await fetch('/v1/curation' + path, opts);
    let data = null;
    try { data = await res.json(); } catch { /* empty */ }
    if (!res.ok) throw new Error((data && data.error && data.error.message) || `The server answered ${res.status}.`);
    return data;
  }

  function say(msg, kind) {
    const el = $('#status');
    el.classList.toggle('error', kind === 'error');
    el.textContent = msg;
  }

  const R = { view: '', curator: null, pair: null, judged: 0, busy: false, typesFilled: false };

  const num = (v, d = 3) => (v == null ? '—' : Number(v).toFixed(d));

  // ---- Pairs -----------------------------------------------------------

  function pretty(o) {
    if (o.parsed != null && typeof o.parsed === 'object') return JSON.stringify(o.parsed, null, 2);
    return o.content;
  }

  function renderPair() {
    const p = R.pair;
    const body = $('#p-body');
    $('#p-count').textContent = `Judged ${R.judged} this session`;
    const actions = [...document.querySelectorAll('#p-actions button')];
    if (!p || p.done) {
      $('#p-prompt').textContent = '';
      body.replaceChildren(h('p', { class: 'muted', id: 'p-done' }, 'No pair is left for you to compare. Well done.'));
      for (const b of actions) b.disabled = true;
      return;
    }
    for (const b of actions) b.disabled = false;
    $('#p-prompt').textContent = `${p.type} · ${p.key}${p.preview ? ' — ' + p.preview : ''}`;
    const side = (letter, o) => h('article', { class: 'pair-side card', 'data-side': letter, 'aria-label': `Answer ${letter}` },
      h('h2', {}, `Answer ${letter}`, o.model ? h('span', { class: 'muted pair-model' }, ` · ${o.model}`) : null),
      o.valid ? null : h('p', { class: 'badge badge-bad' }, 'Invalid output'),
      h('pre', { class: 'pair-content' }, pretty(o)));
    body.replaceChildren(side('A', p.a), side('B', p.b), ...judgeLine(p.prelabels, 'Model judges: '));
  }

  async function nextPair() {
    const q = new URLSearchParams({ blind: String($('#p-blind').checked) });
    if ($('#p-type').value) q.set('type', $('#p-type').value);
    try {
      R.pair = await api('GET', `/pairs/next?${q}`);
    } catch (e) { say(e.message, 'error'); return; }
    renderPair();
  }

  // judgeLine says what the model judges said of a pair, as A and B read.
  function judgeLine(pre, lead) {
    if (!pre || !pre.length) return [];
    const word = { a: 'A is better', b: 'B is better', tie: 'a tie', both_bad: 'both bad' };
    return [h('p', { class: 'prelabel' }, lead, pre.map((x, i) => [i ? '; ' : '', h('strong', {}, `judge ${x.model}: `), word[x.value] || x.value,
      x.reason ? ` (${x.reason})` : '']))];
  }

  async function judge(winner) {
    const p = R.pair;
    if (!p || p.done || R.busy) return;
    R.busy = true;
    try {
      const reason = $('#p-reason').value.trim();
      const v = await api('POST', '/preferences', { task_id: p.task_id, output_a: p.a.id, output_b: p.b.id, winner, reason: reason || undefined });
      $('#p-judges').replaceChildren(...judgeLine(v.prelabels, 'On the pair you just judged, '));
      R.judged++;
      $('#p-reason').value = '';
      say(`Saved: ${{ a: 'A is better', b: 'B is better', tie: 'a tie', both_bad: 'both bad' }[winner]}.`);
      await nextPair();
    } catch (e) { say(e.message, 'error'); } finally { R.busy = false; }
  }

  // ---- Leaderboard -----------------------------------------------------

  async function loadLeaderboard() {
    let r;
    try { r = await api('GET', '/leaderboard'); } catch (e) { say(e.message, 'error'); return; }
    const boards = r.data || [];
    $('#lb-body').replaceChildren(...(boards.length ? boards.map((b) => h('section', { class: 'lb-type' },
      h('h2', {}, `${b.type} · ${b.verdicts} verdict${b.verdicts === 1 ? '' : 's'}`),
      h('div', { class: 'table-wrap' }, h('table', { class: 'data-table lb-table', 'data-type': b.type },
        h('caption', { class: 'visually-hidden' }, `Models of ${b.type}, strongest first`),
        h('thead', {}, h('tr', {}, ['Rank', 'Model', 'Score', '95% interval', 'Games', 'Wins', 'Losses', 'Ties']
          .map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, b.standings.map((s) => h('tr', { 'data-model': s.model },
          h('td', {}, s.rank), h('td', {}, s.model), h('td', { class: 'lb-score' }, num(s.score, 2)),
          h('td', {}, `${num(s.low, 2)} … ${num(s.high, 2)}`), h('td', {}, s.games), h('td', {}, s.wins),
          h('td', {}, s.losses), h('td', {}, s.ties)))))))) :
      [h('p', { class: 'muted' }, 'No pairwise verdict yet: compare outputs in Pairs first.')]));
  }

  // ---- Team ------------------------------------------------------------

  let curators = [];

  async function loadTeam() {
    const admin = R.curator && R.curator.role === 'admin';
    $('#assign-card').hidden = !admin;
    $('#judge-form').hidden = !admin;
    await Promise.all([loadProgress(), loadAgreement(), loadDisagreements(), loadJudges(), admin ? loadAssignment() : null]);
  }

  // ---- Model judges ------------------------------------------------------

  let judgeTimer = null;

  async function loadJudges() {
    clearTimeout(judgeTimer);
    let r;
    try { r = await api('GET', '/judges'); } catch (e) { say(e.message, 'error'); return; }
    const sel = $('#j-model');
    if (!sel.options.length) sel.replaceChildren(...(r.models || []).map((m) => h('option', { value: m }, m)));
    $('#j-types').replaceChildren(...(r.types || []).map((t) => h('option', { value: t })));
    const list = r.data || [];
    $('#judge-list').replaceChildren(...(list.length ? list.map((j) => h('tr', { 'data-judge': j.id, 'data-status': j.status },
      h('td', {}, j.type), h('td', {}, j.model), h('td', {}, j.kind === 'preference' ? 'pairwise' : 'rating'),
      h('td', { class: 'j-status' }, j.status === 'failed' ? `failed: ${j.error}` : j.status),
      h('td', {}, `${j.completed} of ${j.requests}`), h('td', { class: 'j-labels' }, j.status === 'running' ? '—' : String(j.labels)))) :
      [h('tr', {}, h('td', { colspan: '6', class: 'muted' }, 'No judge has run yet.'))]));
    // A running judge is polled until its batch ends, while the Team view is open.
    if (list.some((j) => j.status === 'running') && R.view === 'team') judgeTimer = setTimeout(loadJudges, 1000);
    if (list.some((j) => j.status !== 'running') && R.judgesSeen !== list.map((j) => j.id + j.status).join()) {
      R.judgesSeen = list.map((j) => j.id + j.status).join();
      loadAgreement();
    }
  }

  async function runJudge(ev) {
    ev.preventDefault();
    $('#judge-error').textContent = '';
    try {
      const j = await api('POST', '/judges', { type: $('#j-type').value.trim(), model: $('#j-model').value, kind: $('#j-kind').value,
        limit: Number($('#j-limit').value) || undefined });
      say(`Judge started: batch ${j.batch_id}, ${j.requests} request${j.requests === 1 ? '' : 's'}.`);
      await loadJudges();
    } catch (e) { $('#judge-error').textContent = e.message; }
  }

  async function loadProgress() {
    let r;
    try { r = await api('GET', '/progress'); } catch (e) { say(e.message, 'error'); return; }
    $('#progress-list').replaceChildren(...(r.data || []).map((p) => h('tr', { 'data-curator': p.curator_id },
      h('td', {}, p.curator, p.has_queue ? null : h('span', { class: 'muted' }, ' (no queue: every task)')),
      h('td', { class: 'pr-assigned' }, p.assigned), h('td', { class: 'pr-done' }, p.done), h('td', { class: 'pr-overlap' }, p.overlap))));
  }

  async function loadAssignment() {
    let a, c;
    try { [a, c] = await Promise.all([api('GET', '/assignment'), api('GET', '/curators')]); } catch (e) { say(e.message, 'error'); return; }
    curators = (c.data || []).filter((x) => !x.revoked_at);
    $('#a-overlap').value = a.overlap;
    $('#a-reviewers').value = a.reviewers || 2;
    const byID = Object.fromEntries((a.queues || []).map((q) => [q.curator_id, q]));
    $('#assign-queues').replaceChildren(h('div', { class: 'table-wrap' }, h('table', { class: 'data-table' },
      h('caption', { class: 'visually-hidden' }, 'A queue per curator'),
      h('thead', {}, h('tr', {}, ['Curator', 'Has a queue', 'Type', 'Model', 'Text'].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, curators.map((cur) => {
        const q = byID[cur.id] || {};
        const id = (f) => `q-${f}-${cur.id}`;
        return h('tr', { 'data-curator': cur.id },
          h('th', { scope: 'row' }, cur.name),
          h('td', {}, h('input', { type: 'checkbox', id: id('on'), 'aria-label': `${cur.name} has a queue`, checked: !!byID[cur.id] })),
          h('td', {}, h('input', { type: 'text', id: id('type'), 'aria-label': `${cur.name}: type`, value: q.type || '' })),
          h('td', {}, h('input', { type: 'text', id: id('model'), 'aria-label': `${cur.name}: model`, value: q.model || '' })),
          h('td', {}, h('input', { type: 'text', id: id('q'), 'aria-label': `${cur.name}: text`, value: q.q || '' })));
      })))));
  }

  async function saveAssignment(ev) {
    ev.preventDefault();
    $('#assign-error').textContent = '';
    const queues = curators.filter((c) => $(`#q-on-${c.id}`).checked).map((c) => ({
      curator_id: c.id, type: $(`#q-type-${c.id}`).value.trim() || undefined,
      model: $(`#q-model-${c.id}`).value.trim() || undefined, q: $(`#q-q-${c.id}`).value.trim() || undefined,
    }));
    try {
      await api('PUT', '/assignment', { overlap: Number($('#a-overlap').value) || 0, reviewers: Number($('#a-reviewers').value) || 2, queues });
      say('Assignment saved.');
      await loadTeam();
    } catch (e) { $('#assign-error').textContent = e.message; }
  }

  async function loadAgreement() {
    let r;
    try { r = await api('GET', '/agreement'); } catch (e) { say(e.message, 'error'); return; }
    const rows = r.data || [];
    $('#agreement-body').replaceChildren(...(rows.length ? rows.map((a) => h('section', { class: 'agree', 'data-type': a.type, 'data-kind': a.kind },
      h('h3', {}, `${a.type} · ${a.kind === 'preference' ? 'pairwise verdicts' : 'ratings'} · ${a.units} unit${a.units === 1 ? '' : 's'} judged by two or more`),
      h('p', {}, Object.entries(a.alpha).map(([m, v]) => h('span', { class: 'alpha', 'data-metric': m }, `Krippendorff's α (${m}) = ${num(v)} `))),
      h('div', { class: 'table-wrap' }, h('table', { class: 'data-table' },
        h('caption', { class: 'visually-hidden' }, 'Agreement of each two curators'),
        h('thead', {}, h('tr', {}, ['Curators', 'Units', 'Agreed', "Cohen's κ"].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, a.pairs.map((p) => h('tr', { 'data-pair': `${p.curator_a} ${p.curator_b}` },
          h('td', {}, `${p.curator_a_name} – ${p.curator_b_name}`), h('td', {}, p.units),
          h('td', {}, `${Math.round(100 * p.agreement)}%`), h('td', { class: 'kappa' }, num(p.kappa))))))))) :
      [h('p', { class: 'muted' }, 'Nothing judged by two curators yet: set an overlap in the assignment.')]));
  }

  async function loadDisagreements() {
    let r;
    try { r = await api('GET', '/disagreements?kind=preference'); } catch (e) { say(e.message, 'error'); return; }
    const admin = R.curator && R.curator.role === 'admin';
    const rows = r.data || [];
    const settle = (d, winner, label) => h('button', { type: 'button', class: 'btn btn-ghost-dark', 'data-settle': winner,
      onclick: async () => {
        try {
          await api('POST', '/preferences', { task_id: d.task_id, output_a: d.output_ids[0], output_b: d.output_ids[1], winner, final: true });
          say('Settled.');
          await loadTeam();
        } catch (e) { say(e.message, 'error'); }
      } }, label);
    $('#disagree-body').replaceChildren(...(rows.length ? [h('ul', { class: 'disagree-list' }, rows.map((d) => h('li', { 'data-task': d.task_id },
      h('a', { href: `#/tasks/${encodeURIComponent(d.task_id)}` }, `${d.type} · task ${d.task_id}`), ' — ',
      d.votes.map((v) => `${v.curator}: ${v.value}`).join(', '),
      admin ? h('span', { class: 'settle' }, ' Settle: ', settle(d, 'a', 'first is better'), settle(d, 'b', 'second is better'),
        settle(d, 'tie', 'tie')) : null)))] :
      [h('p', { class: 'muted', id: 'no-disagreement' }, 'No disagreement left.')]));
  }

  // ---- Keys and views ----------------------------------------------------

  function onKey(e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || $('#nav').hidden) return; // signed out
    const help = $('#help');
    if (help && help.open) return;
    const tgt = e.target;
    if (tgt instanceof Element && tgt.id === 'p-reason' && e.key === 'Escape') { e.preventDefault(); tgt.blur(); return; }
    if (tgt instanceof Element && tgt.closest('input, textarea, select, [contenteditable=""], [contenteditable="true"]')) return;
    if (e.key === 'p' && R.view !== 'pairs') { e.preventDefault(); location.hash = '#/pairs'; return; }
    if (R.view !== 'pairs') return;
    const act = { 1: 'a', 2: 'b', 0: 'tie', x: 'both_bad' }[e.key];
    if (act) { e.preventDefault(); judge(act); return; }
    if (e.key === 'c') { e.preventDefault(); $('#p-reason').focus(); }
  }

  function fillTypes(types) {
    if (R.typesFilled || !types || !types.length) return;
    R.typesFilled = true;
    const sel = $('#p-type');
    sel.replaceChildren(h('option', { value: '' }, 'All types'), ...types.map((t) => h('option', { value: t.id }, t.title || t.id)));
  }

  window.addEventListener('kiln:view', (e) => {
    R.view = e.detail.view;
    R.curator = e.detail.curator;
    fillTypes(e.detail.types);
    if (R.view === 'pairs') nextPair();
    if (R.view === 'leaderboard') loadLeaderboard();
    if (R.view === 'team') loadTeam();
  });
  window.addEventListener('hashchange', () => {
    if (!/^#\/(pairs|leaderboard|team)/.test(location.hash)) R.view = '';
  });
  document.addEventListener('keydown', onKey);
  for (const b of document.querySelectorAll('#p-actions button')) b.addEventListener('click', () => judge(b.dataset.winner));
  $('#p-blind').addEventListener('change', nextPair);
  $('#p-type').addEventListener('change', nextPair);
  $('#assign-form').addEventListener('submit', saveAssignment);
  $('#judge-form').addEventListener('submit', runJudge);
})();
