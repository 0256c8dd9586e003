// The static facts about each AWS service we speak (names for signing, endpoints, config).
#pragma once

#include <string_view>

namespace spotgrid {

enum class Protocol { kJson10, kQuery, kEc2Query, kRestXml, kImds };

struct ServiceInfo {
  std::string_view name;            // as shown in errors: "SQS", "DynamoDB", "S3", ...
  std::string_view signing_name;    // SigV4 service: "sqs", "dynamodb", "s3", "ec2", "autoscaling"
  std::string_view endpoint_prefix; // default host: https://<prefix>.<region>.amazonaws.com
  std::string_view env_suffix;      // AWS_ENDPOINT_URL_<suffix>
  std::string_view config_key;      // key inside a [services name] section of ~/.aws/config
  Protocol protocol;
};

inline constexpr ServiceInfo kSqsService{"SQS", "sqs", "sqs", "SQS", "sqs", Protocol::kJson10};
inline constexpr ServiceInfo kDynamoDbService{"DynamoDB", "dynamodb", "dynamodb", "DYNAMODB",
                                              "dynamodb", Protocol::kJson10};
inline constexpr ServiceInfo kS3Service{"S3", "s3", "s3", "S3", "s3", Protocol::kRestXml};
inline constexpr ServiceInfo kEc2Service{"EC2", "ec2", "ec2", "EC2", "ec2", Protocol::kEc2Query};
inline constexpr ServiceInfo kAutoScalingService{"AutoScaling", "autoscaling", "autoscaling",
                                                 "AUTO_SCALING", "auto_scaling",
                                                 Protocol::kQuery};

}  // namespace spotgrid
