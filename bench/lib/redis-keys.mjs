/** Deletes every key under `prefix` (an ioredis client), so a bench run leaves nothing behind. */
export async function unlinkPrefix(client, prefix) {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5000);
    cursor = next;
    if (keys.length > 0) await client.unlink(...keys);
  } while (cursor !== '0');
}
