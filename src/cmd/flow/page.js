// heplink flow page (src/cmd/flow/page.rs inlines it after `const payloads = [...]`).
window.addEventListener('error', e => { const d = document.createElement('div'); d.id = 'script-error'; d.textContent = String(e.message); document.body.appendChild(d); });
const pane = document.getElementById('payload-pane'), shown = document.getElementById('payload');
document.querySelectorAll('.arrow').forEach(a => a.addEventListener('click', () => {
  document.querySelectorAll('.arrow.selected').forEach(s => s.classList.remove('selected'));
  a.classList.add('selected');
  const [f, i] = a.dataset.step.split('-').map(Number);
  shown.textContent = payloads[f][i];
  pane.hidden = false;
}));
document.getElementById('close').addEventListener('click', () => { pane.hidden = true; });
document.addEventListener('keydown', e => { if (e.key === 'Escape') pane.hidden = true; });
document.getElementById('zoom-fit').addEventListener('click', () => document.body.classList.add('fit'));
document.getElementById('zoom-full').addEventListener('click', () => document.body.classList.remove('fit'));
document.body.dataset.ready = 'yes';
// `#selftest`: click the first arrow and record whether its payload showed (for tests).
if (location.hash === '#selftest') {
  const first = document.querySelector('.arrow');
  if (first) first.dispatchEvent(new MouseEvent('click', {bubbles: true}));
  const [f, i] = first ? first.dataset.step.split('-').map(Number) : [0, 0];
  const text = shown.textContent;
  document.body.dataset.selftest = first && !pane.hidden && text === payloads[f][i] && text.length > 0 ? 'ok' : 'failed';
}
// `#layouttest`: where the first flow is in the window, as the browser laid it out (for tests).
if (location.hash === '#layouttest') {
  const sec = document.querySelector('main section.flow');
  const box = sec.querySelector('.box'), head = sec.querySelector('.head');
  const inView = el => { const b = el.getBoundingClientRect(); return b.top >= 0 && b.left >= 0 && b.bottom <= innerHeight && b.right <= innerWidth; };
  const titles = [...head.querySelectorAll('.column .title')];
  const r = {
    first: sec.dataset.cid,
    firstArrowInView: inView(sec.querySelector('.arrow')),
    columnsInView: [...head.querySelectorAll('.column')].every(inView),
    titles: titles.filter(inView).map(t => t.textContent).join('|'),
    titlePx: Math.min(...titles.map(t => t.getBoundingClientRect().height)).toFixed(1),
    noiseFolded: !(document.getElementById('noise') || {open: false}).open,
  };
  box.scrollTop = box.scrollHeight;
  const hb = head.getBoundingClientRect(), bb = box.getBoundingClientRect();
  r.headSticks = box.scrollTop > 0 && Math.abs(hb.top - bb.top) <= 2;
  for (const [k, v] of Object.entries(r)) document.body.dataset['layout' + k[0].toUpperCase() + k.slice(1)] = String(v);
}
