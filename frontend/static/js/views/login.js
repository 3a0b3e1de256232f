// The login screen.  `info` is a notice shown above the form (logged out, session expired).

import { NetworkError } from '../api.js';
import { h } from '../dom.js';

export function renderLogin(main, { api, info, onLoggedIn }) {
  const email = h('input', {
    id: 'login-email', name: 'email', type: 'email', autocomplete: 'username', required: true,
    autocapitalize: 'none', spellcheck: 'false',
  });
  const password = h('input', {
    id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true,
  });
  const error = h('p', { id: 'login-error', class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'button button-primary' }, 'Log in');
  const form = h(
    'form',
    { class: 'login-form', novalidate: true, 'aria-describedby': 'login-error' },
    h('div', { class: 'field' }, h('label', { for: 'login-email' }, 'Email'), email),
    h('div', { class: 'field' }, h('label', { for: 'login-password' }, 'Password'), password),
    error,
    submit,
  );
  const section = h(
    'section',
    { class: 'login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Log in to MV-OS'),
    info ? h('p', { class: `login-info login-info-${info.kind}`, role: 'status' }, info.text) : null,
    form,
  );

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    if (!email.value.trim() || !password.value) {
      error.textContent = 'Enter your email and password.';
      (email.value.trim() ? password : email).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Logging in\u2026';
    form.setAttribute('aria-busy', 'true');
    try {
      const login = await api.login(email.value.trim(), password.value);
      onLoggedIn(login);
    } catch (err) {
      error.textContent =
        err instanceof NetworkError
          ? 'Cannot reach the MV-OS backend. Check your connection and try again.'
          : err.message;
      password.value = '';
      password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Log in';
      form.removeAttribute('aria-busy');
    }
  });

  main.replaceChildren(section);
  email.focus();
}
