import type { RequestHandler } from 'express';
import jwt from 'jsonwebtoken';
import { AppError } from './app-error';

export type Role = 'super_admin' | 'admin' | 'user';

export interface Principal {
  userId: string;
  role: Role;
  subaccountIds: string[];
}

const ROLES: readonly Role[] = ['user', 'admin', 'super_admin'];

/** Verifies the platform's bearer token: HS256 only, so `alg: none` and RS/HS confusion are refused. */
export function verifyBearer(header: string | undefined, secret: string): Principal {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!match) throw new AppError('UNAUTHORIZED', 'A bearer token is required', 401);
  let claims: jwt.JwtPayload;
  try {
    const decoded = jwt.verify(match[1]!, secret, { algorithms: ['HS256'] });
    if (typeof decoded === 'string') throw new Error('string payload');
    claims = decoded;
  } catch (err) {
    const expired = err instanceof jwt.TokenExpiredError;
    throw new AppError('UNAUTHORIZED', expired ? 'The token has expired' : 'The token is invalid', 401);
  }
  const userId = claims.userId ?? claims.id;
  const role = claims.role as Role;
  if (typeof userId !== 'string' || !ROLES.includes(role)) {
    throw new AppError('UNAUTHORIZED', 'The token lacks userId or role', 401);
  }
  const ids = Array.isArray(claims.subaccountIds)
    ? claims.subaccountIds.filter((s): s is string => typeof s === 'string')
    : [];
  return { userId, role, subaccountIds: ids };
}

export function authenticate(secret: string): RequestHandler {
  return (req, res, next) => {
    res.locals.principal = verifyBearer(req.headers.authorization, secret);
    next();
  };
}

/** `user` reads; `admin` and `super_admin` also connect, disconnect and send. */
export function requireRole(minimum: Role): RequestHandler {
  return (_req, res, next) => {
    const principal = res.locals.principal as Principal;
    if (ROLES.indexOf(principal.role) < ROLES.indexOf(minimum)) {
      return next(new AppError('FORBIDDEN', `This action needs the ${minimum} role`, 403));
    }
    next();
  };
}

export function canAccessSubaccount(principal: Principal, subaccountId: string): boolean {
  return principal.role === 'super_admin' || principal.subaccountIds.includes(subaccountId);
}
