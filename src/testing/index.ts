export { signPayload } from './sign';
export { sampleNotification, formBody, PUBLISHED_EXAMPLE_BODY } from './samples';
export type { NotificationFields } from './samples';
