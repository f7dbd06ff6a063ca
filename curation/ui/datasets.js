// kiln curation workbench: dataset versions, on the Export view. It saves
// the export form's selection as a version, lists versions with their
// download links, and shows the diff of two versions. Text only reaches
// the page as text, never as markup.
'use strict';

(() => {
  const $ = (sel) => document.querySelector(sel);

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
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

  async function load() {
    let list;
    try {
      list = (await api('GET', '/datasets')).data;
    } catch (e) {
      $('#ds-error').textContent = e.message;
      return;
    }
    $('#ds-list').replaceChildren(...list.map((v) => h('tr', { 'data-name': v.name, 'data-version': v.version },
      h('td', {}, v.name), h('td', {}, `v${v.version}`), h('td', {}, `${v.format} · ${v.file_format}`), h('td', {}, v.rows),
      h('td', { class: 'ds-hash', title: v.content_hash }, v.content_hash.slice(0, 12)),
      h('td', {}, h('a', { href: v.download_url, download: `${v.name}-v${v.version}.zip`, class: 'ds-download' }, 'zip')))));
    const names = [...new Set(list.map((v) => v.name))];
    const sel = $('#ds-diff-name');
    const keep = sel.value;
    sel.replaceChildren(...names.map((n) => h('option', { value: n }, n)));
    if (names.includes(keep)) sel.value = keep;
  }

  async function save(ev) {
    ev.preventDefault();
    $('#ds-error').textContent = '';
    const body = {
      name: $('#ds-name').value.trim(),
      format: $('#x-format').value,
      file_format: $('#ds-file-format').value,
      dedupe: $('#ds-dedupe').checked,
    };
    if ($('#x-type').value) body.type = $('#x-type').value;
    if (!$('#x-source-field').hidden && $('#x-source').value) body.source = $('#x-source').value;
    if ($('#x-per-type').value) body.per_type = Number($('#x-per-type').value);
    const btn = $('#ds-save');
    btn.disabled = true;
    try {
      const v = await api('POST', '/datasets', body);
      $('#status').textContent = `Saved ${v.name} v${v.version}: ${v.rows} examples.`;
      await load();
    } catch (e) {
      $('#ds-error').textContent = e.message;
    } finally {
      btn.disabled = false;
    }
  }

  async function diff(ev) {
    ev.preventDefault();
    const name = $('#ds-diff-name').value;
    const out = $('#ds-diff-result');
    try {
      const d = await api('GET', `/datasets/${encodeURIComponent(name)}/diff?from=${$('#ds-diff-from').value}&to=${$('#ds-diff-to').value}`);
      const part = (label, ids) => [h('h3', {}, `${label}: ${ids.length}`), ids.length ? h('ul', { 'data-kind': label.toLowerCase() }, ids.slice(0, 50).map((id) => h('li', {}, h('code', {}, id)))) : null];
      out.replaceChildren(...[h('p', { class: 'ds-diff-summary' }, `${name}: v${d.from} → v${d.to}, ${d.unchanged} unchanged`),
        part('Added', d.added), part('Removed', d.removed), part('Changed', d.changed)].flat().filter(Boolean));
    } catch (e) {
      out.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, e.message));
    }
  }

  function route() {
    if (location.hash.startsWith('#/export') && !$('#nav').hidden) load();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#ds-form').addEventListener('submit', save);
    $('#ds-diff-form').addEventListener('submit', diff);
    window.addEventListener('hashchange', route);
    route();
  });
})();
