// s3rver as its own process for the tests (started by cloud-servers.ts): the buckets and the key pairs
// come from argv as JSON; "ready <port>" on stdout once it listens. s3rver's signature checks accept only
// the key pairs registered here (and its built-in S3RVER/S3RVER).
const S3rver = require("s3rver");
const AWSAccount = require("s3rver/lib/models/account");

const { port, directory, buckets, keyPairs } = JSON.parse(process.argv[2]);
const account = new AWSAccount(123456789001, "cloudtap-tests");
for (const { accessKeyId, secretAccessKey } of keyPairs) account.createKeyPair(accessKeyId, secretAccessKey);
const server = new S3rver({
  port,
  address: "127.0.0.1",
  silent: true,
  directory,
  configureBuckets: buckets.map((name) => ({ name })),
});
server.run().then(
  (address) => process.stdout.write(`ready ${address.port}\n`),
  (err) => {
    process.stderr.write(`s3rver failed: ${err.stack}\n`);
    process.exit(1);
  },
);
