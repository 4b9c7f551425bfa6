export { caiboCallbacks } from './http/middleware';
export type { CaiboCallbacksRouter, NextFunction } from './http/middleware';
export type {
  CaiboCallbacksOptions,
  CallbackContext,
  RejectionContext,
  ProviderOptions,
  VerifyInput,
} from './options';
export { CallbackError } from './errors';
export type { CallbackErrorType, CallbackErrorOptions } from './errors';
export { MemoryStore } from './stores/memory';
export type { MemoryStoreOptions } from './stores/memory';
export type { CallbackStore, ClaimResult, ClaimOptions, CompleteOptions } from './stores/types';
export type {
  CaiboEvent,
  CaiboEventBase,
  CaiboPaymentEvent,
  CaiboThreeDSEvent,
  CaiboProvider,
  CaiboFailure,
  CaiboClientInfo,
  PaymentStatus,
  TransactionStatus,
} from './core/events';
export type { Logger } from './logger';
export type { RateLimitOptions } from './security/rate-limit';
export type { WarningCode } from './security/warnings';
export type { MetricsSnapshot, RouteLatencySnapshot, CallbackRates, ResponseTimeSnapshot } from './metrics';
export { verifySignature, computeSignature } from './core/signature';
export type { SignatureCheck } from './core/signature';
export { eventKey } from './core/notification';
export { CaiboClient } from './client/caibo-client';
export type { CaiboClientOptions } from './client/caibo-client';
export type { PaymentStatusResponse } from './core/status';
export type { ReconcileResult } from './reconcile';
export type { PaymentState, PaymentStateStore, InboxStore, InboxRecord, InboxState, LeasedRecord } from './stores/types';
export type { CaiboRoute } from './core/events';
export type { DeferredEntry } from './deferred/worker';
