/** The one root logger, created by main and passed down as child loggers. */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config.js';

export function createLogger(level: LogLevel, node: string, dest?: DestinationStream): Logger {
  const opts = { level, base: { node }, timestamp: pino.stdTimeFunctions.isoTime };
  return dest === undefined ? pino(opts) : pino(opts, dest);
}
