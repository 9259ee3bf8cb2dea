/** The same 32-byte secret for every target; koa-jwt gets it as a string, as its README shows. */
export const SECRET = 'bench-secret-that-is-32-bytes-long!!';
