/** `text` as a single-quoted JavaScript string literal, so a printed snippet stays valid code. */
export function jsString(text: string): string {
  const escaped = text.replace(/[\\'\p{Cc}\u2028\u2029]/gu, (char) =>
    char === '\\' || char === "'"
      ? `\\${char}`
      : `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return `'${escaped}'`;
}
