/**
 * Tapper ids: 1..255 characters of `[A-Za-z0-9._-]`, and not `.` or `..`, since an id is a path component of
 * every object key (docs/tap-format.md 3.1 and 6): those two would name the directory itself or its parent.
 */
const TAPPER_ID_RE = /^[A-Za-z0-9._-]{1,255}$/;

export function isTapperId(id: string): boolean {
  return TAPPER_ID_RE.test(id) && id !== "." && id !== "..";
}

export const TAPPER_ID_RULE = '1..255 characters of [A-Za-z0-9._-], not "." or ".."';
