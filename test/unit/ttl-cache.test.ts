import { TtlCache } from '../../src/lib/ttl-cache';

const deferred = <T>() => {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
};

test('when many callers miss the same key at once, then one load serves them all and is cached', async () => {
  const cache = new TtlCache<string>(60_000);
  const gate = deferred<string>();
  let loads = 0;
  const load = () => {
    loads++;
    return gate.promise;
  };

  const all = Promise.all(Array.from({ length: 20 }, () => cache.getOrLoad('k', load)));
  gate.resolve('v');

  expect(await all).toEqual(Array(20).fill('v'));
  expect(loads).toBe(1);
  expect(await cache.getOrLoad('k', load)).toBe('v');
  expect(loads).toBe(1);
});

test('when the key is deleted while its load is in flight, then the loaded value is returned but not cached', async () => {
  const cache = new TtlCache<string>(60_000);
  const gate = deferred<string>();
  const first = cache.getOrLoad('k', () => gate.promise);

  cache.delete('k');
  gate.resolve('old');

  expect(await first).toBe('old');
  expect(cache.get('k')).toBeUndefined();
});

test('when a load fails, then its callers see the error and the next caller loads again', async () => {
  const cache = new TtlCache<string>(60_000);
  await expect(cache.getOrLoad('k', () => Promise.reject(new Error('down')))).rejects.toThrow('down');

  expect(await cache.getOrLoad('k', () => Promise.resolve('up'))).toBe('up');
});
