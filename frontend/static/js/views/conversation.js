// One conversation: messages in chronological order (the API pages newest first), each with its direction
// and, for messages we sent, a status tick (sent / delivered / read / failed with the reason), and the
// composer.  Enter sends, Shift+Enter starts a new line.

import { ApiError, NetworkError } from '../api.js';
import { contactName, contactNumber, fullTime, h, messageTime, reconcile } from '../dom.js';

const STATUS = {
  pending: { glyph: '\u25f7', label: 'Sending' },
  accepted: { glyph: '\u25f7', label: 'Sending' },
  sent: { glyph: '\u2713', label: 'Sent' },
  delivered: { glyph: '\u2713\u2713', label: 'Delivered' },
  read: { glyph: '\u2713\u2713', label: 'Read' },
  failed: { glyph: '\u26a0', label: 'Failed' },
};

function failureReason(message) {
  const error = message.error;
  if (!error) return 'No reason was given.';
  const title = error.title || error.message || 'No reason was given.';
  return error.code ? `${title} (code ${error.code})` : title;
}

function renderStatus(message) {
  const status = STATUS[message.status] || { glyph: '?', label: message.status || 'Unknown' };
  return h(
    'span',
    { class: `tick tick-${message.status}`, title: status.label, dataset: { status: message.status } },
    h('span', { class: 'tick-glyph', 'aria-hidden': 'true' }, status.glyph),
    ' ',
    h('span', { class: 'tick-label' }, status.label),
  );
}

function renderMessage(message, who) {
  const outgoing = message.direction === 'out';
  const when = message.sent_at || message.created_at;
  return h(
    'li',
    {
      class: `message message-${outgoing ? 'out' : 'in'}${message.status === 'failed' ? ' message-failed' : ''}`,
      dataset: { messageId: message.id, direction: message.direction, status: message.status },
    },
    h('span', { class: 'visually-hidden' }, outgoing ? 'You:' : `${who}:`),
    h('p', { class: `message-text${message.text ? '' : ' message-media'}` }, message.text || `[${message.type}]`),
    h(
      'span',
      { class: 'message-meta' },
      when ? h('time', { datetime: when, title: fullTime(when) }, messageTime(when)) : null,
      outgoing ? renderStatus(message) : null,
    ),
    outgoing && message.status === 'failed'
      ? h('p', { class: 'message-error' }, `Not delivered: ${failureReason(message)}`)
      : null,
    // Stored but not (yet) accepted by WhatsApp: the last attempt ended without an answer.
    outgoing && message.status === 'pending' && message.error
      ? h('p', { class: 'message-error' }, `Not sent yet: ${message.error.title} Send the same text again to retry.`)
      : null,
  );
}

function newKey() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

export function createConversation({ id, api, onSent, onShowOlder }) {
  let who = `Conversation ${id}`;
  const title = h('h2', { id: 'conversation-title', class: 'pane-title', tabindex: '-1' }, who);
  const subtitle = h('p', { class: 'conversation-number' });
  const back = h('a', { class: 'back-link', href: '#/inbox' }, '\u2190 Inbox');
  const older = h(
    'button',
    { type: 'button', class: 'button button-secondary show-more', hidden: true, onclick: onShowOlder },
    'Show older messages',
  );
  const list = h('ol', { class: 'messages' });
  const status = h('p', { class: 'loading' }, 'Loading messages\u2026');
  // role=log: a screen reader announces messages added at the end, and only those.
  const log = h('div', { role: 'log', 'aria-labelledby': 'conversation-title' }, list);
  const scroller = h('div', { class: 'message-scroller' }, older, status, log);

  const text = h('textarea', {
    id: 'composer-text',
    name: 'text',
    rows: '2',
    placeholder: 'Type a message',
    'aria-describedby': 'composer-hint composer-error',
    maxlength: '4096',
  });
  const label = h('label', { for: 'composer-text', class: 'visually-hidden' }, 'Message');
  const send = h('button', { type: 'submit', class: 'button button-primary' }, 'Send');
  const error = h('p', { id: 'composer-error', class: 'form-error', role: 'alert' });
  const form = h(
    'form',
    { class: 'composer', 'aria-label': 'Reply' },
    label,
    h('div', { class: 'composer-row' }, text, send),
    h('p', { id: 'composer-hint', class: 'composer-hint' }, 'Enter sends \u00b7 Shift+Enter adds a new line'),
    error,
  );
  const root = h(
    'section',
    { class: 'conversation-pane', 'aria-labelledby': 'conversation-title' },
    h('header', { class: 'conversation-header' }, back, h('div', {}, title, subtitle)),
    scroller,
    form,
  );

  let sending = false;
  let latest = [];
  // One Idempotency-Key per text: sending the same text again (a retry) reuses it, so it is never sent twice.
  let pendingKey = null;

  text.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = text.value.trim();
    if (!body || sending) return;
    sending = true;
    send.disabled = true;
    form.setAttribute('aria-busy', 'true');
    error.textContent = '';
    try {
      if (!pendingKey || pendingKey.text !== body) pendingKey = { text: body, key: newKey() };
      const created = await api.send(id, body, pendingKey.key);
      pendingKey = null;
      text.value = '';
      if (created && created.id !== undefined) update([created, ...latest.filter((m) => m.id !== created.id)]);
      onSent();
    } catch (err) {
      if (err instanceof NetworkError) {
        error.textContent = 'Not sent: cannot reach the MV-OS backend. Your text is kept; try again.';
      } else if (err instanceof ApiError && err.status !== 401) {
        // The API explains the provider's refusal in `message`; `meta_code` is WhatsApp's own error code.
        const code = err.details && err.details.meta_code;
        const extra = code && !err.message.includes(String(code)) ? ` (WhatsApp error ${code})` : '';
        error.textContent = `Not sent: ${err.message}${extra}`;
        if (err.details && err.details.message_id !== undefined) onSent(); // stored: show it in the list
      }
    } finally {
      sending = false;
      send.disabled = false;
      form.removeAttribute('aria-busy');
    }
  });

  function setContact(contact) {
    if (!contact) return;
    who = contactName(contact);
    title.textContent = who;
    const number = contactNumber(contact);
    subtitle.textContent = number && number !== who ? number : '';
    label.textContent = `Message to ${who}`;
  }

  // `messages` newest first, as the API pages them.
  function update(messages, hasMore = older.hidden === false) {
    latest = messages;
    status.hidden = true;
    older.hidden = !hasMore;
    const nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    const chronological = [...messages].reverse();
    const before = list.lastElementChild && list.lastElementChild.dataset.key;
    reconcile(list, chronological, {
      key: (m) => m.id,
      signature: (m) => JSON.stringify([m.status, m.error, m.text, m.sent_at, who]),
      render: (m) => renderMessage(m, who),
    });
    const after = list.lastElementChild && list.lastElementChild.dataset.key;
    if (messages.length === 0) {
      status.textContent = 'No messages yet.';
      status.hidden = false;
    }
    if (nearBottom || before !== after) scroller.scrollTop = scroller.scrollHeight;
  }

  function notFound() {
    status.textContent = 'This conversation does not exist.';
    status.hidden = false;
    form.hidden = true;
  }

  return { root, update, setContact, notFound, focusComposer: () => text.focus() };
}
