'use strict';
// HS256 verification for the churn scenario, so that the peers pay for a
// signature check on every connection as Herald does (node:crypto only).
const crypto = require('node:crypto');

function b64urlDecode(s) {
  return Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

// verify returns the claims of a valid, unexpired HS256 token, else null.
function verify(token, secret) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  let header;
  try {
    header = JSON.parse(b64urlDecode(parts[0]).toString('utf8'));
  } catch {
    return null;
  }
  if (!header || header.alg !== 'HS256') return null;
  const want = crypto.createHmac('sha256', secret).update(parts[0] + '.' + parts[1]).digest();
  const got = b64urlDecode(parts[2]);
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return null;
  let claims;
  try {
    claims = JSON.parse(b64urlDecode(parts[1]).toString('utf8'));
  } catch {
    return null;
  }
  const now = Date.now() / 1000;
  if (typeof claims.exp !== 'number' || claims.exp < now) return null;
  if (typeof claims.sub !== 'string' || claims.sub === '') return null;
  return claims;
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
function bearer(h) {
  if (typeof h !== 'string') return null;
  const m = /^bearer\s+(.+)$/i.exec(h);
  return m ? m[1] : null;
}

module.exports = { verify, bearer };
