/**
 * Runs async sections one at a time per key, in call order, within this process; different keys run
 * concurrently. Used where several writers may update one database document at once: FerretDB 1.24 applies
 * an update by reading the document, changing it in FerretDB and writing it back, without isolation, so
 * two concurrent `$inc`/`$push` on one document can lose one of them (MongoDB applies each atomically).
 * Serialising this process's own writes per document makes the single-process deployment exact on both;
 * several processes on one FerretDB remain exposed (docs/DECISIONS.md).
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, section: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(section, section);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    try {
      return await result;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
