import type { ListOptions, ListPage, ObjectInfo } from "./object-store.js";

/** Every key under `prefix` in key order, page by page through `listPage` (the `list` of every backend). */
export async function* listAllPages(
  listPage: (prefix: string, options: ListOptions) => Promise<ListPage>,
  prefix: string,
  options: ListOptions = {},
): AsyncGenerator<ObjectInfo> {
  let startAfter = options.startAfter;
  for (;;) {
    const page = await listPage(prefix, { ...options, ...(startAfter === undefined ? {} : { startAfter }) });
    yield* page.objects;
    if (page.nextStartAfter === undefined) return;
    startAfter = page.nextStartAfter;
  }
}
