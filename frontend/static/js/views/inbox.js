// The inbox: conversations, newest first, each with the contact's name or number, the last message and its
// time.  Updated in place by the poller.

import { contactName, h, messagePreview, reconcile, shortTime, fullTime } from '../dom.js';

export function createInbox({ onShowMore }) {
  const list = h('ul', { class: 'conversation-list', 'aria-labelledby': 'inbox-title' });
  const empty = h(
    'p',
    { class: 'empty', hidden: true },
    'No conversations yet. Messages sent to your WhatsApp number appear here by themselves.',
  );
  const loading = h('p', { class: 'loading' }, 'Loading conversations\u2026');
  const more = h(
    'button',
    { type: 'button', class: 'button button-secondary show-more', hidden: true, onclick: onShowMore },
    'Show more conversations',
  );
  const root = h(
    'nav',
    { class: 'inbox', 'aria-labelledby': 'inbox-title' },
    h('h1', { id: 'inbox-title', class: 'pane-title' }, 'Inbox'),
    loading,
    empty,
    list,
    more,
  );
  let selectedId = null;

  function render(conversation) {
    const last = conversation.last_message;
    const when = conversation.last_message_at || (last && last.sent_at);
    const preview = messagePreview(last);
    const outgoing = last && last.direction === 'out';
    return h(
      'li',
      {},
      h(
        'a',
        {
          class: 'conversation',
          href: `#/conversations/${conversation.id}`,
          'aria-current': String(conversation.id) === selectedId ? 'page' : null,
          dataset: { conversationId: conversation.id },
        },
        h(
          'span',
          { class: 'conversation-top' },
          h('span', { class: 'conversation-name' }, contactName(conversation.contact)),
          when ? h('time', { class: 'conversation-time', datetime: when, title: fullTime(when) }, shortTime(when)) : null,
        ),
        h(
          'span',
          { class: 'conversation-preview' },
          outgoing ? h('span', { class: 'preview-you' }, 'You: ') : null,
          preview,
        ),
      ),
    );
  }

  function update(conversations, hasMore) {
    loading.hidden = true;
    empty.hidden = conversations.length > 0;
    more.hidden = !hasMore;
    reconcile(list, conversations, {
      key: (c) => c.id,
      signature: (c) =>
        JSON.stringify([c.contact, c.last_message_at, c.last_message, String(c.id) === selectedId]),
      render,
      focusSelector: 'a',
    });
  }

  function select(id) {
    selectedId = id === null ? null : String(id);
    for (const link of list.querySelectorAll('a.conversation')) {
      if (link.dataset.conversationId === selectedId) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  }

  return { root, update, select };
}
