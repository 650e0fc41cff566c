import jwt from 'jsonwebtoken';

export const TEST_JWT_SECRET = 'test-jwt-secret-0123456789abcdef';
export const TEST_ENCRYPTION_KEY = Buffer.alloc(32, 7).toString('base64');

type Role = 'super_admin' | 'admin' | 'user';

export function tokenFor(
  claims: { role: Role; subaccountIds?: string[]; userId?: string },
  opts: jwt.SignOptions = {},
): string {
  return jwt.sign({ userId: claims.userId ?? `u-${claims.role}`, ...claims }, TEST_JWT_SECRET, {
    algorithm: 'HS256',
    expiresIn: '1h',
    ...opts,
  });
}

export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
export const adminOf = (subaccountId: string) =>
  bearer(tokenFor({ role: 'admin', subaccountIds: [subaccountId] }));
export const userOf = (subaccountId: string) =>
  bearer(tokenFor({ role: 'user', subaccountIds: [subaccountId] }));
export const superAdmin = () => bearer(tokenFor({ role: 'super_admin' }));
