// MV-OS inbox: boot (runtime config, banner), routing by URL hash, polling, session handling.
//   #/login                  the login screen
//   #/inbox                  conversations
//   #/conversations/<id>     conversations + one conversation open

import { createApi } from './api.js';
import {
  clearConnectionProblem,
  problemMessage,
  setTitle,
  showConnectionProblem,
  showEnvironment,
} from './chrome.js';
import { loadConfig } from './config.js';
import { h } from './dom.js';
import { Poller } from './poller.js';
import { clearSession, isExpired, loadSession, saveSession } from './session.js';
import { createConversation } from './views/conversation.js';
import { createInbox } from './views/inbox.js';
import { renderLogin } from './views/login.js';

const PER_PAGE = 50;
const main = document.getElementById('main');
const logoutButton = document.getElementById('logout');
const whoami = document.getElementById('whoami');

const state = {
  config: null,
  api: null,
  session: loadSession(),
  loginInfo: null,
  shell: null, // { root, inbox, conversation, conversationId, poller, conversations }
  expiryTimer: null,
};

function parseRoute() {
  const hash = location.hash.replace(/^#/, '');
  const match = hash.match(/^\/conversations\/(\d+)$/);
  if (match) return { name: 'conversation', id: match[1] };
  if (hash === '/login') return { name: 'login' };
  return { name: 'inbox' };
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// ---- session ---------------------------------------------------------------------------------------------

function endSession(info) {
  clearTimeout(state.expiryTimer);
  clearSession();
  state.session = null;
  state.loginInfo = info;
  if (state.shell) {
    state.shell.poller.stop();
    state.shell = null;
  }
  clearConnectionProblem();
  logoutButton.hidden = true;
  whoami.hidden = true;
  go('#/login');
}

const EXPIRED = { kind: 'warning', text: 'Your session has expired. Please log in again.' };

function onUnauthorized(err) {
  if (!state.session) return;
  endSession(err.code === 'token_expired' ? EXPIRED : { kind: 'warning', text: 'Please log in again.' });
}

function watchExpiry() {
  clearTimeout(state.expiryTimer);
  if (!state.session) return;
  // setTimeout's delay is a 32-bit number of milliseconds; longer sessions re-arm on the next route.
  const wait = Math.min(state.session.expiresAt - Date.now(), 2 ** 31 - 1);
  state.expiryTimer = setTimeout(() => {
    if (state.session && isExpired(state.session)) endSession(EXPIRED);
    else watchExpiry();
  }, Math.max(0, wait));
}

// The skip link moves focus without touching the URL hash (the hash is the route).
document.querySelector('.skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});

logoutButton.addEventListener('click', () => {
  // The server ends every session of this user (all tokens); the local session ends whatever it answers.
  if (state.api && state.session) state.api.logout().catch(() => {});
  endSession({ kind: 'info', text: 'You have logged out.' });
});

// ---- screens ---------------------------------------------------------------------------------------------

function showLogin() {
  if (state.shell) {
    state.shell.poller.stop();
    state.shell = null;
  }
  setTitle('Log in');
  const info = state.loginInfo;
  state.loginInfo = null;
  renderLogin(main, {
    api: state.api,
    info,
    onLoggedIn(login) {
      state.session = saveSession(login);
      watchExpiry();
      go('#/inbox');
    },
  });
}

function createShell() {
  const shell = {
    conversationId: null,
    conversation: null,
    conversations: [],
    pages: 1,
    messagePages: 1,
  };
  shell.inbox = createInbox({
    onShowMore() {
      shell.pages += 1;
      shell.poller.now();
    },
  });
  shell.placeholder = h(
    'section',
    { class: 'conversation-pane conversation-empty', 'aria-label': 'No conversation open' },
    h('p', {}, 'Choose a conversation to read and reply.'),
  );
  shell.root = h('div', { class: 'shell' }, shell.inbox.root, shell.placeholder);
  shell.poller = new Poller(() => poll(shell), state.config.poll_interval_ms, {
    onProblem(err, delay) {
      showConnectionProblem(problemMessage(err), delay, () => shell.poller.now());
    },
    onRecovered: clearConnectionProblem,
    onFatal(err) {
      if (err.status === 401) return; // onUnauthorized already sent the person to the login screen
      console.error('MV-OS: polling failed', err);
    },
  });
  return shell;
}

async function poll(shell) {
  const conversations = [];
  let hasMore = false;
  for (let page = 1; page <= shell.pages; page += 1) {
    const answer = await state.api.conversations(page, PER_PAGE);
    conversations.push(...answer.items);
    hasMore = answer.has_more;
    if (!hasMore) break;
  }
  if (shell !== state.shell) return;
  shell.conversations = conversations;
  shell.inbox.update(conversations, hasMore);
  const id = shell.conversationId;
  if (id === null) return;
  const open = conversations.find((c) => String(c.id) === id);
  if (open) shell.conversation.setContact(open.contact);
  const messages = [];
  let olderExist = false;
  try {
    for (let page = 1; page <= shell.messagePages; page += 1) {
      const answer = await state.api.messages(id, page, PER_PAGE);
      messages.push(...answer.items);
      olderExist = answer.has_more;
      if (!olderExist) break;
    }
  } catch (err) {
    if (err.status === 404 && shell.conversationId === id) {
      shell.conversation.notFound();
      return;
    }
    throw err;
  }
  if (shell === state.shell && shell.conversationId === id) {
    shell.conversation.update(messages, olderExist);
  }
}

function openConversation(shell, id) {
  if (shell.conversationId === id) return;
  shell.conversationId = id;
  shell.messagePages = 1;
  const current = shell.conversation ? shell.conversation.root : shell.placeholder;
  if (id === null) {
    shell.conversation = null;
    current.replaceWith(shell.placeholder);
    shell.root.classList.remove('shell-conversation-open');
    shell.inbox.select(null);
    setTitle('Inbox');
    return;
  }
  shell.conversation = createConversation({
    id,
    api: state.api,
    onSent: () => shell.poller.now(),
    onShowOlder() {
      shell.messagePages += 1;
      shell.poller.now();
    },
  });
  const known = shell.conversations.find((c) => String(c.id) === id);
  if (known) shell.conversation.setContact(known.contact);
  current.replaceWith(shell.conversation.root);
  shell.root.classList.add('shell-conversation-open');
  shell.inbox.select(id);
  setTitle(known ? shell.conversation.root.querySelector('h2').textContent : 'Conversation');
  shell.conversation.focusComposer();
  shell.poller.now();
}

async function showInbox(route) {
  if (!state.shell) {
    state.shell = createShell();
    main.replaceChildren(state.shell.root);
    logoutButton.hidden = false;
    setTitle('Inbox');
    state.shell.poller.start();
    state.api
      .me()
      .then((me) => {
        whoami.textContent = me.display_name ? `${me.display_name} (${me.email})` : me.email;
        whoami.hidden = false;
      })
      .catch(() => {});
  }
  openConversation(state.shell, route.name === 'conversation' ? route.id : null);
}

function route() {
  const target = parseRoute();
  if (!state.session || isExpired(state.session)) {
    if (state.session) {
      clearSession();
      state.session = null;
      state.loginInfo = EXPIRED;
    }
    if (target.name !== 'login') {
      go('#/login');
      return;
    }
    showLogin();
    return;
  }
  if (target.name === 'login') {
    go('#/inbox');
    return;
  }
  watchExpiry();
  showInbox(target);
}

async function boot() {
  state.config = await loadConfig();
  showEnvironment(state.config);
  state.api = createApi({
    base: state.config.api_base,
    getToken: () => (state.session ? state.session.token : null),
    onUnauthorized,
  });
  window.addEventListener('hashchange', route);
  route();
}

boot();
