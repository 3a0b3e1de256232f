// The parts of the page every screen shares: the environment banner, the page title, the connection notice.

let config = { environment: 'local', env_label: 'LOCAL' };

export function isLoud(cfg) {
  // Only production is quiet; anything else, including an unexpected value, is loud.
  return cfg.environment !== 'production';
}

export function showEnvironment(cfg) {
  config = cfg;
  const banner = document.getElementById('env-banner');
  const quiet = document.getElementById('env-quiet');
  document.documentElement.dataset.environment = cfg.environment;
  if (isLoud(cfg)) {
    banner.replaceChildren();
    const label = document.createElement('strong');
    label.className = 'env-banner-label';
    label.textContent = cfg.env_label;
    banner.append(label, ' environment \u2014 not production');
    banner.className = `env-banner env-banner-${cfg.environment === 'staging' ? 'staging' : 'local'}`;
    banner.hidden = false;
    quiet.hidden = true;
  } else {
    banner.hidden = true;
    quiet.textContent = cfg.env_label;
    quiet.setAttribute('aria-label', `Environment: ${cfg.env_label}`);
    quiet.hidden = false;
  }
}

export function setTitle(part) {
  const prefix = isLoud(config) ? `[${config.env_label}] ` : '';
  document.title = `${prefix}${part ? `${part} \u00b7 ` : ''}MV-OS`;
}

let restoredTimer = null;

// A visible, announced notice while the backend cannot be reached; `retry` is offered as a button.
export function showConnectionProblem(message, retryInMs, retry) {
  const notice = document.getElementById('connection-notice');
  clearTimeout(restoredTimer);
  notice.replaceChildren();
  const seconds = Math.max(1, Math.round(retryInMs / 1000));
  const text = document.createElement('span');
  text.textContent = `${message} Retrying in ${seconds} s\u2026`;
  notice.append(text);
  if (retry) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'button button-secondary button-small';
    button.textContent = 'Retry now';
    button.addEventListener('click', retry);
    notice.append(' ', button);
  }
  notice.className = 'connection-notice connection-notice-problem';
  notice.dataset.state = 'problem';
  notice.hidden = false;
}

export function clearConnectionProblem() {
  const notice = document.getElementById('connection-notice');
  if (notice.hidden || notice.dataset.state !== 'problem') return;
  notice.replaceChildren('Connected again.');
  notice.className = 'connection-notice connection-notice-ok';
  notice.dataset.state = 'restored';
  restoredTimer = setTimeout(() => {
    notice.hidden = true;
    notice.dataset.state = '';
  }, 3000);
}

export function problemMessage(err) {
  if (err && err.name === 'ApiError') return `MV-OS is having trouble: ${err.message}`;
  return 'Cannot reach the MV-OS backend.';
}
