/**
 * Makes `rabbitmq-stream-js-client` 1.0.0 usable against Debian's RabbitMQ
 * 3.10 for tests that drive the client directly: the backbone engine's own
 * shim (engine/backbone/compat.ts says what it patches), so tests and
 * gateways talk to RabbitMQ through the same client behaviour.
 */
export { applyClientCompat } from '../../packages/broker/src/engine/backbone/compat.js';
