/**
 * The test sshd's host, as scripts/services/start-sshd.sh sets it up (facts in scripts/services/.env): what the
 * SSH backend's `hosts` take, for the tests that run jobs over SSH.
 */
const env = (k: string, d: string) => process.env[k] ?? d

export const sshHost = () => ({
  host: env("TREX_TEST_SSH_HOST", "127.0.0.1"),
  port: Number(env("TREX_TEST_SSH_PORT", "2222")),
  username: env("TREX_TEST_SSH_USER", "sdktest"),
  privateKeyPath: env("TREX_TEST_SSH_KEY", "/var/lib/trex-test-ssh/id_ed25519"),
  knownHostsPath: env("TREX_TEST_SSH_KNOWN_HOSTS", "/var/lib/trex-test-ssh/known_hosts")
})
