/**
 * The cloud-stores bench's shaped-link pass: run by `benchCloudStores` inside a network namespace whose
 * loopback is shaped to CLOUD_BENCH_LINK, it runs one pass there (the stores start inside it too) and prints
 * its results as one JSON line.
 */
import { benchCloudStoresHere } from "./cloud-stores.bench.js";

process.stdout.write(`${JSON.stringify(await benchCloudStoresHere())}\n`);
